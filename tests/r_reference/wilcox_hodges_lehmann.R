# Reference values for tests/test_stats.py: R's wilcox.test(x, y, conf.int = TRUE) with defaults,
# except tol.root: the scale-relative tolerance trialake uses, 1e-10 times the width of the
# interval the roots are searched in (min(x) - max(y), max(x) - min(y)).
# Run: Rscript tests/r_reference/wilcox_hodges_lehmann.R   (R 4.2.2, Debian r-base-core)
# Prints one line per case: name estimate ci_low ci_high p_value statistic conf_level method
options(digits = 17)
cases <- list(
  # exact branch: both groups < 50, no ties
  exact_small = list(x = c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30),
                     y = c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06 + 0.001, 3.14, 1.29 + 0.002)),
  # exact branch, unequal sizes, zeros and negatives (shift of lesion percentage points)
  exact_unequal_neg = list(x = c(-13.5, -2.25, 0, -20.75, -7.5, 4.125, -30.5, -11.0, -1.0, -16.25, -9.875, -5.5),
                           y = c(-3.0, 2.5, -0.5, 6.75, -8.25, 1.125, -4.0)),
  # exact branch at its boundary: 49 vs 49 (counts of the null distribution near 1e28)
  exact_49_vs_49 = local({ set.seed(1); list(x = round(rnorm(49), 8), y = round(rnorm(49) + 0.3, 8)) }),
  # exact branch, tiny groups: requested level not achievable
  exact_tiny = list(x = c(1.1, 2.2), y = c(0.3, 5.4, 3.3)),
  # ties (small groups): normal approximation with tie and continuity correction
  ties_small = list(x = c(3, 5, 5, 7, 9, 9, 9, 12), y = c(1, 2, 2, 5, 6, 8)),
  # n >= 50 in one group, no ties: normal approximation
  normal_large = local({ set.seed(20210210); list(x = round(rnorm(65, -13, 20), 6), y = round(rnorm(35, 0, 20), 6)) }),
  # n >= 50, heavy ties (integer distances in metres) and an even number of differences
  normal_ties = local({ set.seed(7); list(x = round(runif(60, 200, 500) / 10) * 10, y = round(runif(40, 180, 480) / 10) * 10) }),
  # flat statistic at the root: estimate lands where R's zeroin stops
  normal_flat = list(x = rep(c(0, 1), times = c(30, 30)), y = rep(c(0, 1), times = c(20, 22)))
)
for (name in names(cases)) {
  cs <- cases[[name]]
  tol <- 1e-10 * ((max(cs$x) - min(cs$y)) - (min(cs$x) - max(cs$y)))
  r <- suppressWarnings(wilcox.test(cs$x, cs$y, conf.int = TRUE, tol.root = tol))
  cat(name, format(unname(r$estimate), digits = 17), format(r$conf.int[1], digits = 17),
      format(r$conf.int[2], digits = 17), format(r$p.value, digits = 17),
      format(unname(r$statistic), digits = 17), format(attr(r$conf.int, "conf.level"), digits = 17),
      shQuote(r$method), "\n")
}
# the generated samples, so the Python test can use the same numbers
for (name in c("exact_49_vs_49", "normal_large", "normal_ties")) {
  cat(name, "x <-", deparse(cases[[name]]$x, width.cutoff = 500L), "\n")
  cat(name, "y <-", deparse(cases[[name]]$y, width.cutoff = 500L), "\n")
}
