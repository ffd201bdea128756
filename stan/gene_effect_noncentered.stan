/* Gene-effect matrix: a gene effect per gene x cell line, with guide
   efficacy, screen quality and copy-number correction
   (noncentered parameterization).

     logfc_n      ~ normal(mu_u[n], sigma_c[c_n])                 rows n of unit u = (s, c)
     mu_u         = beta_c + omega_s + kappa_c * x_u + k_s * q_c * theta_gc,   g = g(s)
     theta_gc     ~ normal(mu_g + x_gc' b_g, tau_g)               gene effect in line c
     b_gk         ~ normal(b_0k, sigma_bk)                        its slope on covariate k
     mu_g         ~ normal(mu_0, sigma_mu)                        the gene's mean effect
     log(tau_g)   ~ normal(mu_log_tau, sigma_log_tau)             how much lines differ
     k_s          ~ normal(1, sigma_k) T[0, 1]                    guide efficacy, sigma_k fixed
     log(q_c)     ~ normal(0, sigma_q),  sum(log q_c) = 0         screen quality (cutting)
     beta_c       ~ normal(0, sigma_beta),  sum(beta_c) = 0       screen offset
     omega_s      ~ normal(0, sigma_omega)                        guide offset (pDNA error)
     kappa_c      ~ normal(kappa_0, sigma_kappa)                  cutting toxicity per unit x
     log(sigma_c) ~ normal(mu_sigma, tau_sigma)                   noise per cell line
     mu_0 ~ normal(0, 1)              sigma_mu ~ normal(0, 1)
     mu_log_tau ~ normal(-1.5, 1)     sigma_log_tau ~ normal(0, 1)
     sigma_q ~ normal(0, 0.5)        sigma_beta ~ normal(0, 0.5)
     sigma_omega ~ normal(0, 0.5)    kappa_0 ~ normal(0, 0.5)
     sigma_kappa ~ normal(0, 0.25)   mu_sigma ~ normal(-1, 1)    tau_sigma ~ exponential(2)
     b_0k ~ normal(0, slope_sd)      sigma_bk ~ normal(0, slope_sd)            (slope_sd data, 0.5)

   Covariates (optional, K >= 0): x_gc holds K gene x cell-line covariates
   (expression, mutation, lineage indicators), each centred over its gene's
   lines and divided by its sd over all cells (pystanmods.models.gene_effect),
   so mu_g stays the gene's mean effect over its lines and b_gk is the change
   of theta per sd of covariate k in gene g, pooled across genes. The slopes
   are non-centered in both programs: a gene's slope is informed by its C
   thetas, which are themselves uncertain, the data-poor case. Their priors'
   sd is data (slope_sd), like sigma_k, because K varies between fits.

   x_u is the copy-number covariate of the guide's cut sites in the line
   (log2 relative copy number, plus log2 of the number of sites for a guide
   that aligns to several places; 0 where unknown): CERES's cutting
   toxicity, one slope per cell line, instead of a slope per guide.

   Guide efficacy: its prior has its mode at full efficacy and a fixed sd
   (data sigma_k, 0.3 by default), a half-normal below 1 as Chronos's
   exp(-|v|) efficacy is penalised toward 1. It is fixed, not learnt: learnt,
   on 200 genes of the DepMap sample, its sd went to 1.5 (efficacy nearly
   uniform on (0, 1)) and a gene whose guides disagree (one guide at -0.8,
   three at +0.3) had two modes, "one guide works" and "three guides work",
   that chains never crossed. Fixed, it makes those explanations less
   equal, and the truncated normal is log-concave in k_s (a logit-normal with
   the guide offset omega_s can make one guide's posterior bimodal); but such
   a gene can still keep both modes (GNS on the whole sample).

   Parameterization: the two programs differ in mu_g, log_tau_g, omega_s,
   log_q_c, beta_c, kappa_c and log_sigma_c; both sample k_s itself, whose
   prior has no hyperparameter to make a funnel with. The centered program is for data-rich fits (a DepMap
   release: every gene in tens of lines), where non-centering pins each
   hyperparameter between hundreds of data-fixed effects; it samples each
   centered effect on the affine scale of a pilot estimate (data *_loc and
   *_scale, pystanmods.models.gene_effect.pilot), which leaves the density
   unchanged and starts adaptation with every coordinate near unit scale.

   Identification: theta enters only as k_s * q_c * theta_gc. k_s lies in
   (0, 1) with its prior's mode at 1, and the log q_c sum to zero (a Helmert
   basis of C - 1 free coordinates), so the scale of theta is that of a
   fully efficacious guide in a screen of typical quality. Scaling a gene's
   efficacies down and its thetas up fits its data as well; only the
   efficacy prior pins that scale, which is why its sd is fixed. Effects
   scaled to control genes depend on it far less. beta_c sums to zero, so a common shift of
   every line's logFC is carried by the gene means. Each guide targets one
   gene (DepMap's guide map), so the rows of one gene in one cell line form
   a block that no other theta touches.

   Likelihood: theta is integrated out. Given the other parameters, a block
   b = (g, c) with units u (its guides, n_u rows each, mean ybar_u, within-
   unit sum of squares ss_b) is normal with covariance
   sigma_c^2 I + tau_g^2 a a', a_u = k_s q_c on each of the unit's rows: a
   rank-one update. With m_b = mu_g + x_gc' b_g the block's prior mean of
   theta and r_u = ybar_u - (beta_c + omega_s + kappa_c x_u + a_u m_b), A = sum n_u a_u^2, R = sum n_u r_u^2, Bs = sum n_u a_u r_u,
   lambda = tau_g^2 / sigma_c^2 and D = 1 + lambda A (Sherman-Morrison and
   the matrix determinant lemma):
     log p(block) = -0.5 [N_b log(2 pi sigma_c^2) + log D
                          + (ss_b + R - lambda Bs^2 / D) / sigma_c^2].
   A gradient costs O(units) and the sampler never sees the G x C thetas.
   Their conditional posterior is exact:
     theta_gc | rest ~ normal(m_b + lambda Bs / D, tau_g / sqrt(D)),
   so their posterior summaries are computed from the other draws
   (pystanmods.models.gene_effect), and theta draws are written only when
   compute_theta = 1. log_lik is per block (leave one gene x cell line out).
   Generated by pystanmods from stan/templates/gene_effect.stan.j2: edit the template. */
functions {
  /* Isometric map from R^(K-1) onto the sum-to-zero subspace of R^K, built
     from the orthonormal Helmert basis. If z ~ N(0, I) then the result is
     distributed as K iid N(0, 1) effects centred by their own sample mean.
     It is linear with orthonormal columns, so it has a constant Jacobian and
     the prior scale of z is the prior scale of the effects. Stan 2.36 has
     sum_to_zero_vector for this; the embedded engine is Stan 2.35. */
  vector sum_to_zero_helmert(vector z) {
    int N = rows(z);
    vector[N] k = linspaced_vector(N, 1, N);
    vector[N] wz = z ./ sqrt(k .* (k + 1));
    vector[N + 1] x = append_row(reverse(cumulative_sum(reverse(wz))), 0);
    x[2:(N + 1)] -= k .* wz;
    return x;
  }

  /* Pointwise normal log densities, vectorised, for log_lik: Stan's
     normal_lpdf of a vector returns only their sum. */
  vector normal_pointwise_log_density(vector y, vector mu, real sigma) {
    return -0.5 * square((y - mu) / sigma) - log(sigma) - 0.5 * log(2 * pi());
  }

  vector normal_pointwise_log_density(vector y, vector mu, vector sigma) {
    return -0.5 * square((y - mu) ./ sigma) - log(sigma) - 0.5 * log(2 * pi());
  }

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
}
data {
  int<lower=1> N;                                 // rows: guide x cell line x replicate
  int<lower=1> G;                                 // genes
  int<lower=2> C;                                 // cell lines
  int<lower=1> S;                                 // sgRNAs
  array[S] int<lower=1, upper=G> sgrna_gene;      // the gene each guide targets
  vector[N] logfc;
  // Units: the rows of one guide in one cell line, sorted by block then guide.
  int<lower=1, upper=N> U;
  array[U] int<lower=1, upper=S> unit_sgrna;
  array[U] int<lower=1, upper=C> unit_cell_line;
  vector<lower=1>[U] unit_n;                      // rows in the unit
  vector[U] unit_logfc;                           // their mean logfc
  vector[U] unit_x;                               // copy-number covariate
  array[N] int<lower=1, upper=U> row_unit;        // the unit of each row
  // Blocks: gene x cell line, each a contiguous run of units.
  int<lower=1, upper=U> B;
  array[B] int<lower=1, upper=G> block_gene;
  array[B] int<lower=1, upper=C> block_cell_line;
  array[B + 1] int<lower=1, upper=U + 1> block_start;
  vector<lower=0>[B] ss_block;                    // sum of squares within units
  int<lower=0, upper=1> compute_log_lik;  // 1: keep log_lik for LOO
  int<lower=0, upper=1> compute_y_rep;    // 1: keep y_rep for predictive checks
  int<lower=0, upper=1> compute_theta;            // 1: write theta draws
  real<lower=0> sigma_k;                          // sd of the efficacies' prior (fixed, see above)
  int<lower=0> K;                                 // gene x cell-line covariates
  matrix[B, K] x_block;                           // their values per block, centred within genes
  real<lower=0> slope_sd;                         // sd of the slopes' hyperpriors
  // Pilot location and sd of each effect (pystanmods.models.gene_effect.pilot),
  // for the centered program's affine scales; the zero-sum effects' are of
  // their C - 1 Helmert coordinates. The non-centered program ignores them.
  vector[G] mu_g_loc;
  vector<lower=0>[G] mu_g_scale;
  vector[G] log_tau_g_loc;
  vector<lower=0>[G] log_tau_g_scale;
  vector[S] omega_s_loc;
  vector<lower=0>[S] omega_s_scale;
  vector[C - 1] log_q_c_loc;
  vector<lower=0>[C - 1] log_q_c_scale;
  vector[C - 1] beta_c_loc;
  vector<lower=0>[C - 1] beta_c_scale;
  vector[C] kappa_c_loc;
  vector<lower=0>[C] kappa_c_scale;
  vector[C] log_sigma_c_loc;
  vector<lower=0>[C] log_sigma_c_scale;
}
transformed data {
  array[U] int unit_gene = sgrna_gene[unit_sgrna];
  array[U] int unit_index = linspaced_int_array(U, 1, U);
  array[U] int unit_block;                        // each unit's block
  vector[B] n_block;
  vector[C] line_blocks = rep_vector(0, C);      // gene x line blocks per cell line
  // The likelihood's data weights (integrated_log_density): per unit n, n ybar,
  // n x in block order; the same as dense line x guide matrices (n; then n ybar
  // over n x), zero where a guide has no row in a line; and per line the sums
  // that do not involve a guide or a gene.
  matrix[U, 3] unit_weights = append_col(append_col(unit_n, unit_n .* unit_logfc), unit_n .* unit_x);
  matrix[C, S] line_n = rep_matrix(0, C, S);
  matrix[2 * C, S] line_yx = rep_matrix(0, 2 * C, S);
  matrix[C, 6] line_sums = rep_matrix(0, C, 6);
  if (block_start[1] != 1 || block_start[B + 1] != U + 1) {
    reject("block_start must run from 1 to U + 1");
  }
  for (b in 1:B) {
    if (block_start[b + 1] <= block_start[b]) {
      reject("block ", b, " has no unit");
    }
    n_block[b] = sum(unit_n[block_start[b]:(block_start[b + 1] - 1)]);
    unit_block[block_start[b]:(block_start[b + 1] - 1)] = rep_array(b, block_start[b + 1] - block_start[b]);
    line_blocks[block_cell_line[b]] += 1;
    line_sums[block_cell_line[b], 4] += ss_block[b];
    for (u in block_start[b]:(block_start[b + 1] - 1)) {
      if (unit_gene[u] != block_gene[b] || unit_cell_line[u] != block_cell_line[b]) {
        reject("unit ", u, " is not of block ", b, ": units must be sorted by gene x cell line");
      }
    }
  }
  for (u in 1:U) {
    line_sums[unit_cell_line[u]] += unit_n[u] * [1, unit_logfc[u], unit_x[u], square(unit_logfc[u]),
                                                  square(unit_x[u]), unit_x[u] * unit_logfc[u]];
    line_n[unit_cell_line[u], unit_sgrna[u]] = unit_n[u];
    line_yx[unit_cell_line[u], unit_sgrna[u]] = unit_weights[u, 2];
    line_yx[C + unit_cell_line[u], unit_sgrna[u]] = unit_weights[u, 3];
  }
}
parameters {
  real mu_0;
  real<lower=0> sigma_mu;
  vector[G] mu_g_z;
  real mu_log_tau;
  real<lower=0> sigma_log_tau;
  vector[G] log_tau_g_z;
  vector<lower=0, upper=1>[S] k_s;
  real<lower=0> sigma_omega;
  vector[S] omega_s_z;
  real<lower=0> sigma_q;
  vector[C - 1] log_q_c_z;
  real<lower=0> sigma_beta;
  vector[C - 1] beta_c_z;
  real kappa_0;
  real<lower=0> sigma_kappa;
  vector[C] kappa_c_z;
  real mu_sigma;
  real<lower=0> tau_sigma;
  vector[C] log_sigma_c_z;
  vector[K] b_0;
  vector<lower=0>[K] sigma_b;
  matrix[G, K] b_g_z;
}
transformed parameters {
  vector[G] mu_g = mu_0 + sigma_mu * mu_g_z;
  vector[G] log_tau_g = mu_log_tau + sigma_log_tau * log_tau_g_z;
  vector[S] omega_s = 0 + sigma_omega * omega_s_z;
  vector[C] log_q_c = sigma_q * sum_to_zero_helmert(log_q_c_z);
  vector[C] beta_c = sigma_beta * sum_to_zero_helmert(beta_c_z);
  vector[C] kappa_c = kappa_0 + sigma_kappa * kappa_c_z;
  vector[C] log_sigma_c = mu_sigma + tau_sigma * log_sigma_c_z;
  matrix[G, K] b_g = rep_matrix(b_0', G) + diag_post_multiply(b_g_z, sigma_b);
}
model {
  mu_0 ~ normal(0, 1);
  sigma_mu ~ normal(0, 1);
  mu_log_tau ~ normal(-1.5, 1);
  sigma_log_tau ~ normal(0, 1);
  sigma_omega ~ normal(0, 0.5);
  sigma_q ~ normal(0, 0.5);
  sigma_beta ~ normal(0, 0.5);
  kappa_0 ~ normal(0, 0.5);
  sigma_kappa ~ normal(0, 0.25);
  mu_sigma ~ normal(-1, 1);
  tau_sigma ~ exponential(2);
  mu_g_z ~ std_normal();
  log_tau_g_z ~ std_normal();
  // Truncated to (0, 1) by k_s's bounds; the truncation's mass is constant (sigma_k is data).
  k_s ~ normal(1, sigma_k);
  omega_s_z ~ std_normal();
  log_q_c_z ~ std_normal();
  beta_c_z ~ std_normal();
  kappa_c_z ~ std_normal();
  log_sigma_c_z ~ std_normal();
  b_0 ~ normal(0, slope_sd);
  sigma_b ~ normal(0, slope_sd);
  to_vector(b_g_z) ~ std_normal();
  target += integrated_log_density(unit_sgrna, block_start, block_gene, block_cell_line, line_blocks, unit_weights,
                                   line_n, line_yx, line_sums, block_mean(mu_g, b_g, x_block, block_gene),
                                   log_tau_g, k_s, omega_s, log_q_c, beta_c, kappa_c, log_sigma_c);
}
generated quantities {
  vector[compute_log_lik ? B : 0] log_lik;
  vector[compute_theta ? B : 0] theta;
  vector[compute_y_rep ? N : 0] y_rep;
  {
    // A local block: m_b is not written to the output.
    vector[B] m_b = block_mean(mu_g, b_g, x_block, block_gene);
    if (compute_log_lik) {
      log_lik = block_log_density(unit_logfc, unit_x, unit_n, unit_index, unit_sgrna, unit_cell_line, unit_block,
                                  block_start, block_gene, block_cell_line, n_block, ss_block,
                                  m_b, log_tau_g, k_s, omega_s, log_q_c, beta_c, kappa_c, log_sigma_c);
    }
    if (compute_theta || compute_y_rep) {
      matrix[B, 2] moments = theta_conditional(unit_logfc, unit_x, unit_n, unit_index, unit_sgrna, unit_cell_line,
                                               unit_block, block_start, block_gene, block_cell_line,
                                               m_b, log_tau_g, k_s, omega_s, log_q_c, beta_c, kappa_c,
                                               log_sigma_c);
      vector[B] theta_draw = to_vector(normal_rng(moments[:, 1], moments[:, 2]));
      if (compute_theta) {
        theta = theta_draw;
      }
      if (compute_y_rep) {
        vector[U] mean_u = beta_c[unit_cell_line] + omega_s[unit_sgrna] + kappa_c[unit_cell_line] .* unit_x
                           + k_s[unit_sgrna] .* exp(log_q_c[unit_cell_line])
                             .* theta_draw[unit_block];
        y_rep = to_vector(normal_rng(mean_u[row_unit], exp(log_sigma_c[unit_cell_line[row_unit]])));
      }
    }
  }
}
