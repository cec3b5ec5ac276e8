# Reference values for tests/test_stats.py: difference in proportions (treatment minus control)
# with Newcombe's hybrid score CI (method 10 of Newcombe 1998), built from base R's Wilson
# intervals prop.test(x, n, correct = FALSE)$conf.int, and fisher.test(...)$p.value (two-sided).
# Run: Rscript tests/r_reference/incidence_difference.R   (R 4.2.2, Debian r-base-core)
options(digits = 17)
newcombe <- function(x1, n1, x2, n2, conf.level = 0.95) {
  w1 <- prop.test(x1, n1, correct = FALSE, conf.level = conf.level)$conf.int
  w2 <- prop.test(x2, n2, correct = FALSE, conf.level = conf.level)$conf.int
  p1 <- x1 / n1; p2 <- x2 / n2; d <- p1 - p2
  c(d, d - sqrt((p1 - w1[1])^2 + (w2[2] - p2)^2), d + sqrt((w1[2] - p1)^2 + (p2 - w2[1])^2))
}
cases <- list(c(56, 70, 48, 80), c(9, 10, 3, 10), c(5, 56, 0, 29), c(0, 10, 0, 20),
              c(10, 10, 0, 20), c(12, 65, 5, 35), c(0, 65, 2, 35), c(33, 65, 17, 35),
              c(3, 8, 5, 8), c(4, 8, 4, 8), c(1, 20, 6, 20), c(10, 65, 2, 35), c(0, 5, 5, 5))
for (cs in cases) {
  r <- suppressWarnings(newcombe(cs[1], cs[2], cs[3], cs[4]))
  p <- fisher.test(matrix(c(cs[1], cs[3], cs[2] - cs[1], cs[4] - cs[3]), 2))$p.value
  cat(sprintf("(%d, %d, %d, %d): (%.15g, %.15g, %.15g, %.15g)\n", cs[1], cs[2], cs[3], cs[4], r[1], r[2], r[3], p))
}
