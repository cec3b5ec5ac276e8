# Double programming of gold/endpoints and gold/endpoints_sensitivity in R, from the marts alone.
# Run: Rscript tests/r_reference/endpoints.R DIR   (DIR holds the CSV files written by the test)
#   adsl.csv       USUBJID, the arm variables, population flags, TRTSDT, RANDDT, DTHDT
#   bds.csv        USUBJID, PARAMCD, AVISIT, ANL01FL, ABLFL, CHG, PCHG (ADCT and ADFT together)
#   endpoints.csv  the rows to recompute: PARAMCD, AVISIT, AVAR, population, trt_arm, ctl_arm,
#                  conf_level, method
#   sensitivity.csv (optional) PARAMCD, AVISIT, AVAR, population, better, trt_arm, ctl_arm, window_end
# Writes DIR/r_endpoints.csv and DIR/r_sensitivity.csv. Nothing here calls Python's code: only the
# rules of docs/marts.md (complete cases, R's quantile type 7, wilcox.test with a root tolerance
# of 1e-10 of the search interval; worst rank: deaths by the window's end worst, earlier worse,
# then the other missing values, tied).
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
read <- function(name) read.csv(file.path(dir, name), stringsAsFactors = FALSE, na.strings = "")
adsl <- read("adsl.csv")
bds <- read("bds.csv")
rows <- read("endpoints.csv")

values_of <- function(row, arm) {
  members <- adsl$USUBJID[adsl[[row$population]] %in% "Y" & adsl$TRT01P %in% arm]
  records <- bds[bds$ANL01FL %in% "Y" & bds$PARAMCD == row$PARAMCD & bds$AVISIT == row$AVISIT &
                   bds$USUBJID %in% members, ]
  v <- records[[row$AVAR]]
  v[is.finite(v)]
}
summary_of <- function(v) {
  if (length(v) == 0) return(c(n = 0, median = NA, q1 = NA, q3 = NA))
  q <- quantile(v, c(0.25, 0.5, 0.75), type = 7, names = FALSE)
  c(n = length(v), median = q[2], q1 = q[1], q3 = q[3])
}
tol_of <- function(x, y) 1e-10 * ((max(x) - min(y)) - (min(x) - max(y)))

out <- do.call(rbind, lapply(seq_len(nrow(rows)), function(i) {
  row <- rows[i, ]
  x <- values_of(row, row$trt_arm)
  y <- values_of(row, row$ctl_arm)
  sx <- summary_of(x); sy <- summary_of(y); sa <- summary_of(c(x, y))
  estimate <- NA; low <- NA; high <- NA; p <- NA
  compared <- !startsWith(row$method, "descriptive") && length(x) > 0 && length(y) > 0
  if (compared) {
    r <- tryCatch(suppressWarnings(wilcox.test(x, y, conf.int = TRUE, conf.level = row$conf_level,
                                               tol.root = tol_of(x, y))), error = function(e) NULL)
    if (!is.null(r)) { estimate <- unname(r$estimate); low <- r$conf.int[1]; high <- r$conf.int[2]; p <- r$p.value }
  }
  data.frame(PARAMCD = row$PARAMCD, AVISIT = row$AVISIT, AVAR = row$AVAR,
             n_trt = sx[["n"]], median_trt = sx[["median"]], q1_trt = sx[["q1"]], q3_trt = sx[["q3"]],
             n_ctl = sy[["n"]], median_ctl = sy[["median"]], q1_ctl = sy[["q1"]], q3_ctl = sy[["q3"]],
             n_all = sa[["n"]], median_all = sa[["median"]], q1_all = sa[["q1"]], q3_all = sa[["q3"]],
             estimate = estimate, ci_low = low, ci_high = high, p_value = p)
}))
write.csv(out, file.path(dir, "r_endpoints.csv"), row.names = FALSE)

if (file.exists(file.path(dir, "sensitivity.csv"))) {
  tests <- read("sensitivity.csv")
  reference <- as.Date(ifelse(is.na(adsl$TRTSDT), adsl$RANDDT, adsl$TRTSDT))
  death_day <- as.numeric(as.Date(adsl$DTHDT) - reference)
  death_day <- ifelse(death_day >= 0, death_day + 1, death_day)
  names(death_day) <- adsl$USUBJID
  sens <- do.call(rbind, lapply(seq_len(nrow(tests)), function(i) {
    t <- tests[i, ]
    of_param <- bds[bds$PARAMCD == t$PARAMCD, ]
    with_base <- unique(of_param$USUBJID[of_param$ABLFL %in% "Y"])
    scores <- list()
    for (arm in c(t$trt_arm, t$ctl_arm)) {
      members <- adsl$USUBJID[adsl[[t$population]] %in% "Y" & adsl$TRT01P %in% arm & adsl$USUBJID %in% with_base]
      at_visit <- of_param[of_param$ANL01FL %in% "Y" & of_param$AVISIT == t$AVISIT, ]
      value <- at_visit[[t$AVAR]][match(members, at_visit$USUBJID)]
      value[!is.finite(value)] <- NA
      died <- is.na(value) & !is.na(death_day[members]) & death_day[members] <= t$window_end
      scores[[arm]] <- data.frame(value = value, died = died, day = death_day[members])
    }
    all <- do.call(rbind, scores)
    worse <- if (t$better == "lower") 1 else -1
    observed <- all$value[!is.na(all$value)] * worse
    # a tier beyond every observed value for the missing, a further one for deaths (earlier worse)
    top <- if (length(observed)) max(observed) else 0
    step <- (if (length(observed)) max(abs(observed)) else 0) + 1
    last <- max(c(all$day[all$died], 0)) + 1
    score <- function(s) ifelse(!is.na(s$value), s$value * worse,
                                ifelse(s$died, top + 2 * step + (last - s$day), top + step))
    x <- score(scores[[t$trt_arm]]); y <- score(scores[[t$ctl_arm]])
    p <- tryCatch(suppressWarnings(wilcox.test(x, y)$p.value), error = function(e) NA)
    data.frame(PARAMCD = t$PARAMCD, AVISIT = t$AVISIT, AVAR = t$AVAR, n_trt = length(x), n_ctl = length(y),
               n_died_trt = sum(scores[[t$trt_arm]]$died), n_died_ctl = sum(scores[[t$ctl_arm]]$died), p_value = p)
  }))
  write.csv(sens, file.path(dir, "r_sensitivity.csv"), row.names = FALSE)
}
