  /* Per block (gene x cell line) sums over its units, weighted by the
     unit's row count: A = sum n a^2, Bs = sum n a r, R = sum n r^2, where
     a_u = k_s q_c is the unit's loading on theta and r_u the unit mean's
     residual at theta = mu_g. Units are the columns of a block x unit CSR
     matrix whose values are the row counts. */
  matrix block_statistics(vector unit_logfc, vector unit_x, vector unit_n, array[] int unit_index,
                          array[] int unit_sgrna, array[] int unit_cell_line, array[] int unit_gene,
                          array[] int block_start, vector mu_g, vector logit_k_s, vector omega_s,
                          vector log_q_c, vector beta_c, vector kappa_c) {
    int B = size(block_start) - 1;
    int U = rows(unit_logfc);
    vector[U] a = inv_logit(logit_k_s[unit_sgrna]) .* exp(log_q_c[unit_cell_line]);
    vector[U] r = unit_logfc - beta_c[unit_cell_line] - omega_s[unit_sgrna]
                  - kappa_c[unit_cell_line] .* unit_x - a .* mu_g[unit_gene];
    return append_col(append_col(csr_matrix_times_vector(B, U, unit_n, unit_index, block_start, square(a)),
                                 csr_matrix_times_vector(B, U, unit_n, unit_index, block_start, a .* r)),
                      csr_matrix_times_vector(B, U, unit_n, unit_index, block_start, square(r)));
  }

  /* log p(rows of each block | all but theta), theta_gc integrated out. */
  vector block_log_density(vector unit_logfc, vector unit_x, vector unit_n, array[] int unit_index,
                           array[] int unit_sgrna, array[] int unit_cell_line, array[] int unit_gene,
                           array[] int block_start, array[] int block_gene, array[] int block_cell_line,
                           vector n_block, vector ss_block, vector mu_g, vector log_tau_g, vector logit_k_s,
                           vector omega_s, vector log_q_c, vector beta_c, vector kappa_c, vector log_sigma_c) {
    matrix[rows(n_block), 3] s = block_statistics(unit_logfc, unit_x, unit_n, unit_index, unit_sgrna,
                                                  unit_cell_line, unit_gene, block_start, mu_g, logit_k_s,
                                                  omega_s, log_q_c, beta_c, kappa_c);
    vector[rows(n_block)] log_s2 = 2 * log_sigma_c[block_cell_line];
    vector[rows(n_block)] lambda = exp(2 * log_tau_g[block_gene] - log_s2);
    vector[rows(n_block)] D = 1 + lambda .* s[:, 1];
    return -0.5 * (n_block .* (log(2 * pi()) + log_s2) + log(D)
                   + (ss_block + s[:, 3] - lambda .* square(s[:, 2]) ./ D) .* exp(-log_s2));
  }

  /* Mean and sd of theta_gc given all other parameters, one row per block. */
  matrix theta_conditional(vector unit_logfc, vector unit_x, vector unit_n, array[] int unit_index,
                           array[] int unit_sgrna, array[] int unit_cell_line, array[] int unit_gene,
                           array[] int block_start, array[] int block_gene, array[] int block_cell_line,
                           vector mu_g, vector log_tau_g, vector logit_k_s, vector omega_s, vector log_q_c,
                           vector beta_c, vector kappa_c, vector log_sigma_c) {
    int B = size(block_gene);
    matrix[B, 3] s = block_statistics(unit_logfc, unit_x, unit_n, unit_index, unit_sgrna, unit_cell_line,
                                      unit_gene, block_start, mu_g, logit_k_s, omega_s, log_q_c, beta_c,
                                      kappa_c);
    vector[B] lambda = exp(2 * (log_tau_g[block_gene] - log_sigma_c[block_cell_line]));
    vector[B] D = 1 + lambda .* s[:, 1];
    return append_col(mu_g[block_gene] + lambda .* s[:, 2] ./ D, exp(log_tau_g[block_gene]) ./ sqrt(D));
  }
