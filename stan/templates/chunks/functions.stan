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
