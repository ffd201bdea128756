  /* Each block's prior mean of theta: its gene's mean plus the covariate
     regression, m_b = mu_g + x_b' b_g (x_block is B x K, K possibly 0). */
  vector block_mean(vector mu_g, matrix b_g, matrix x_block, array[] int block_gene) {
    if (cols(x_block) == 0) {
      return mu_g[block_gene];
    }
    return mu_g[block_gene] + rows_dot_product(x_block, b_g[block_gene]);
  }

  /* Per block (gene x cell line) sums over its units, weighted by the
     unit's row count: A = sum n a^2, Bs = sum n a r, R = sum n r^2, where
     a_u = k_s q_c is the unit's loading on theta and r_u the unit mean's
     residual at theta = m_b, the block's prior mean. Units are the columns of a block x unit CSR
     matrix whose values are the row counts. */
  matrix block_statistics(vector unit_logfc, vector unit_x, vector unit_n, array[] int unit_index,
                          array[] int unit_sgrna, array[] int unit_cell_line, array[] int unit_block,
                          array[] int block_start, vector m_b, vector k_s, vector omega_s,
                          vector log_q_c, vector beta_c, vector kappa_c) {
    int B = size(block_start) - 1;
    int U = rows(unit_logfc);
    vector[U] a = k_s[unit_sgrna] .* exp(log_q_c[unit_cell_line]);
    vector[U] r = unit_logfc - beta_c[unit_cell_line] - omega_s[unit_sgrna]
                  - kappa_c[unit_cell_line] .* unit_x - a .* m_b[unit_block];
    return append_col(append_col(csr_matrix_times_vector(B, U, unit_n, unit_index, block_start, square(a)),
                                 csr_matrix_times_vector(B, U, unit_n, unit_index, block_start, a .* r)),
                      csr_matrix_times_vector(B, U, unit_n, unit_index, block_start, square(r)));
  }

  /* log p(rows of each block | all but theta), theta_gc integrated out. */
  vector block_log_density(vector unit_logfc, vector unit_x, vector unit_n, array[] int unit_index,
                           array[] int unit_sgrna, array[] int unit_cell_line, array[] int unit_block,
                           array[] int block_start, array[] int block_gene, array[] int block_cell_line,
                           vector n_block, vector ss_block, vector m_b, vector log_tau_g, vector k_s,
                           vector omega_s, vector log_q_c, vector beta_c, vector kappa_c, vector log_sigma_c) {
    matrix[rows(n_block), 3] s = block_statistics(unit_logfc, unit_x, unit_n, unit_index, unit_sgrna,
                                                  unit_cell_line, unit_block, block_start, m_b, k_s,
                                                  omega_s, log_q_c, beta_c, kappa_c);
    vector[rows(n_block)] log_s2 = 2 * log_sigma_c[block_cell_line];
    vector[rows(n_block)] lambda = exp(2 * log_tau_g[block_gene] - log_s2);
    vector[rows(n_block)] D = 1 + lambda .* s[:, 1];
    return -0.5 * (n_block .* (log(2 * pi()) + log_s2) + log(D)
                   + (ss_block + s[:, 3] - lambda .* square(s[:, 2]) ./ D) .* exp(-log_s2));
  }

  /* Mean and sd of theta_gc given all other parameters, one row per block. */
  matrix theta_conditional(vector unit_logfc, vector unit_x, vector unit_n, array[] int unit_index,
                           array[] int unit_sgrna, array[] int unit_cell_line, array[] int unit_block,
                           array[] int block_start, array[] int block_gene, array[] int block_cell_line,
                           vector m_b, vector log_tau_g, vector k_s, vector omega_s, vector log_q_c,
                           vector beta_c, vector kappa_c, vector log_sigma_c) {
    int B = size(block_gene);
    matrix[B, 3] s = block_statistics(unit_logfc, unit_x, unit_n, unit_index, unit_sgrna, unit_cell_line,
                                      unit_block, block_start, m_b, k_s, omega_s, log_q_c, beta_c,
                                      kappa_c);
    vector[B] lambda = exp(2 * (log_tau_g[block_gene] - log_sigma_c[block_cell_line]));
    vector[B] D = 1 + lambda .* s[:, 1];
    return append_col(m_b + lambda .* s[:, 2] ./ D, exp(log_tau_g[block_gene]) ./ sqrt(D));
  }

  /* The log density of all rows with theta integrated out: the sum over
     blocks of block_log_density, written so that no autodiff node is made
     per unit. Expanding the squares, every sum over a block's units is a
     data-weighted CSR matrix (rows: blocks) times a guide vector (k, omega,
     k^2, k omega), and the terms free of m_b and of the block's spread sum
     over a whole cell line: dense line x guide matrices times omega and
     omega^2. A gradient then costs O(units) in double arithmetic plus
     O(blocks) autodiff nodes: about 25 vector operations over the B blocks
     in the form below (the Sherman-Morrison form of block_log_density takes
     35). Unit weights are n, n ybar, n x (columns 1-3); line sums are sum n,
     n y, n x, y^2 (rows, within-unit spread included), n x^2, n x ybar
     (columns 1-6). */
  real integrated_log_density(array[] int unit_sgrna, array[] int block_start, array[] int block_gene,
                              array[] int block_cell_line, data vector line_blocks, data matrix unit_weights,
                              data matrix line_n, data matrix line_yx, data matrix line_sums,
                              vector m_b, vector log_tau_g, vector k_s, vector omega_s, vector log_q_c,
                              vector beta_c, vector kappa_c, vector log_sigma_c) {
    int B = size(block_gene);
    int S = rows(k_s);
    int C = rows(log_q_c);
    vector[S] k2 = square(k_s);
    // Sums over each block's units of n k, n k^2, n k omega, n ybar k, n x k.
    vector[B] n_k = csr_matrix_times_vector(B, S, unit_weights[:, 1], unit_sgrna, block_start, k_s);
    vector[B] n_k2 = csr_matrix_times_vector(B, S, unit_weights[:, 1], unit_sgrna, block_start, k2);
    vector[B] n_kw = csr_matrix_times_vector(B, S, unit_weights[:, 1], unit_sgrna, block_start, k_s .* omega_s);
    vector[B] ny_k = csr_matrix_times_vector(B, S, unit_weights[:, 2], unit_sgrna, block_start, k_s);
    vector[B] nx_k = csr_matrix_times_vector(B, S, unit_weights[:, 3], unit_sgrna, block_start, k_s);
    // Sums over each line's units of n omega and n omega^2 (columns), and of
    // n ybar omega over n x omega (rows): dense products, because a screen
    // measures nearly every guide in every line, and Stan's sparse product
    // checks and copies its indices as well as its weights at every call.
    matrix[C, 2] n_w = line_n * append_col(omega_s, square(omega_s));
    vector[2 * C] yx_w = line_yx * omega_s;
    vector[C] s2_c = exp(2 * log_sigma_c);
    // Per line: sum n (ybar - kappa x - beta - omega)^2 over its rows, i.e. the
    // residual sum of squares at theta = 0, plus the Gaussian constants.
    vector[C] rss0 = line_sums[:, 4] - 2 * kappa_c .* line_sums[:, 6] + square(kappa_c) .* line_sums[:, 5]
                     - 2 * beta_c .* (line_sums[:, 2] - kappa_c .* line_sums[:, 3])
                     + square(beta_c) .* line_sums[:, 1]
                     - 2 * (yx_w[1:C] - kappa_c .* yx_w[(C + 1):(2 * C)] - beta_c .* n_w[:, 1]) + n_w[:, 2];
    real lp = -0.5 * sum(line_sums[:, 1] .* (log(2 * pi()) + 2 * log_sigma_c) + rss0 ./ s2_c);
    // Per block, with a = k q and h = sum n k (ybar - kappa x - beta - omega):
    // the rows' evidence on theta is the estimate theta_hat = h / (q n_k2), of
    // variance s2 / (q^2 n_k2), so theta_hat ~ normal(m_b, V), V = tau^2 +
    // s2 / (q^2 n_k2), and the block's share of the density beyond rss0 is
    //   -0.5 [log D + (theta_hat - m_b)^2 / V - h^2 / (n_k2 s2)],
    // log D = log(n_k2 V) + 2 log q - 2 log sigma (the determinant lemma).
    // Per-line factors are taken to the blocks by indexing only, never
    // transformed per block: each vector operation over B blocks is one
    // autodiff node and two passes over memory.
    vector[C] q_c = exp(log_q_c);
    vector[C] s2_over_q_c = s2_c ./ q_c;
    vector[B] h = ny_k - n_kw - kappa_c[block_cell_line] .* nx_k - beta_c[block_cell_line] .* n_k;
    vector[B] q_n_k2 = q_c[block_cell_line] .* n_k2;
    vector[B] V = exp(2 * log_tau_g)[block_gene] + s2_over_q_c[block_cell_line] ./ q_n_k2;
    return lp - 0.5 * (2 * dot_product(line_blocks, log_q_c - log_sigma_c) + sum(log(n_k2 .* V))
                       + sum(square(h ./ q_n_k2 - m_b) ./ V)
                       - dot_product(square(h) ./ n_k2, inv(s2_c)[block_cell_line]));
  }
