//! `fpga bench --search-lanes`: the largest lane count of the bench's rebuild design that
//! places, routes and meets timing on the board.

use super::{build_design, Built, Outcome, RunOptions};
use crate::cli::board_build::over_capacity;
use crate::cli::{note, show};
use anyhow::Result;
use serde::Serialize;
use smartdeal_core::AccelConfig;
use smartdeal_fpga::{Board, BuildReport};
use std::path::Path;

/// One candidate of the lane search.
#[derive(Debug, Clone, Serialize)]
pub struct LaneTrial {
    pub lanes: u32,
    /// `ok`, `timing_failed`, `does_not_fit`, `invalid_config`, or `timed_out` (stopped at
    /// `--build-timeout-min`; counted as not fitting).
    pub outcome: Outcome,
    pub detail: String,
    pub fmax_mhz: Option<f64>,
    pub logic_percent: Option<f64>,
}

impl LaneTrial {
    /// The trial of a build with `lanes` lanes in `dir`, however it ended.
    pub fn of(lanes: u32, built: &Built, dir: &Path) -> LaneTrial {
        match built {
            Built::Report(r) => LaneTrial::of_report(lanes, r, dir),
            Built::TimedOut(detail) => LaneTrial {
                lanes,
                outcome: Outcome::TimedOut,
                detail: detail.clone(),
                fmax_mhz: None,
                logic_percent: None,
            },
        }
    }

    fn of_report(lanes: u32, r: &BuildReport, dir: &Path) -> LaneTrial {
        let outcome = Outcome::of(r.status);
        LaneTrial {
            lanes,
            outcome,
            detail: match outcome {
                Outcome::DoesNotFit => over_capacity(r),
                _ => format!("report {}", show(&dir.join("report.json"))),
            },
            fmax_mhz: r.fmax_mhz(),
            logic_percent: Some(r.utilization.logic.percent()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LaneSearch {
    /// The configuration searched: the bench's rebuild design.
    pub config: String,
    /// Largest lane count that built; final only when `complete`.
    pub largest_fitting_lanes: Option<u32>,
    /// False while the search is still running (the files are rewritten after every candidate).
    pub complete: bool,
    /// The `--max-lanes` bound. When the verdict equals it, larger counts were not tried.
    pub max_lanes: u32,
    /// The `--build-timeout-min` limit of each candidate's build, if any.
    pub build_timeout_min: Option<f64>,
    pub trials: Vec<LaneTrial>,
}

/// The lane count to try strictly between `lo` (built) and `hi` (did not): the midpoint, or with
/// `--reuse` the finished reusable build in `out` nearest to it, which costs nothing to try.
fn next_candidate(
    board: Board,
    base: &AccelConfig,
    opts: &RunOptions,
    out: &Path,
    lo: u32,
    hi: u32,
) -> Result<u32> {
    let mut reusable = Vec::new();
    if opts.reuse {
        for lanes in lo + 1..hi {
            let dir = out.join(format!("lanes-{lanes}"));
            if !dir.join("report.json").exists() {
                continue;
            }
            let cfg = lane_config(base, lanes);
            if cfg.validate().is_ok()
                && super::earlier_build(&cfg, &opts.target(board, &dir))?.is_some()
            {
                reusable.push(lanes);
            }
        }
    }
    Ok(bisection_point(lo, hi, &reusable))
}

/// The midpoint of `lo..hi`, or the count in `reusable` nearest to it (the smaller on a tie).
/// Any count strictly between the bounds keeps the search correct; a free one saves a build.
fn bisection_point(lo: u32, hi: u32, reusable: &[u32]) -> u32 {
    let mid = lo + (hi - lo) / 2;
    reusable
        .iter()
        .copied()
        .filter(|&l| lo < l && l < hi)
        .min_by_key(|&l| (l.abs_diff(mid), l))
        .unwrap_or(mid)
}

/// `base` with `lanes` lanes, named for them.
fn lane_config(base: &AccelConfig, lanes: u32) -> AccelConfig {
    let mut cfg = base.clone();
    cfg.lanes = lanes;
    cfg.name = format!("{}-{lanes}lanes", base.name);
    cfg
}

/// The search's state after `trials` (sorted by lanes), not yet complete.
fn partial(base: &AccelConfig, opts: &RunOptions, trials: &[LaneTrial]) -> LaneSearch {
    let mut t = trials.to_vec();
    t.sort_by_key(|t| t.lanes);
    LaneSearch {
        config: base.name.clone(),
        largest_fitting_lanes: t
            .iter()
            .filter(|t| t.outcome == Outcome::Ok)
            .map(|t| t.lanes)
            .max(),
        complete: false,
        max_lanes: opts.max_lanes,
        build_timeout_min: opts.build_timeout.map(|m| m.0),
        trials: t,
    }
}

/// Builds (or reuses) the `lanes`-lane variant of `base` in `out/lanes-N`; an invalid
/// configuration is a trial too (too many lanes make a buffer word too wide).
fn trial(
    board: Board,
    base: &AccelConfig,
    opts: &RunOptions,
    out: &Path,
    lanes: u32,
) -> Result<LaneTrial> {
    let cfg = lane_config(base, lanes);
    if let Err(e) = cfg.validate() {
        return Ok(LaneTrial {
            lanes,
            outcome: Outcome::InvalidConfig,
            detail: e.to_string(),
            fmax_mhz: None,
            logic_percent: None,
        });
    }
    let dir = out.join(format!("lanes-{lanes}"));
    let built = build_design(board, &cfg, opts, &dir)?;
    Ok(LaneTrial::of(lanes, &built, &dir))
}

/// Finds the largest lane count of `base` (all else equal) whose board build succeeds: up from
/// the configured count by doubling, then bisection between the last success and the first
/// failure (or down by bisection when the configured count itself fails). `known` is the
/// configured count's own build; `progress` sees the search after every new candidate.
pub fn search_lanes(
    board: Board,
    base: &AccelConfig,
    opts: &RunOptions,
    out: &Path,
    known: LaneTrial,
    progress: &mut dyn FnMut(&LaneSearch) -> Result<()>,
) -> Result<LaneSearch> {
    let mut trials: Vec<LaneTrial> = vec![known];
    let mut attempt = |lanes: u32| -> Result<bool> {
        if let Some(t) = trials.iter().find(|t| t.lanes == lanes) {
            return Ok(t.outcome == Outcome::Ok);
        }
        note(&format!("lane search: trying {lanes} lanes"));
        let t = trial(board, base, opts, out, lanes)?;
        note(&format!(
            "lane search: {lanes} lanes: {} ({})",
            t.outcome.name(),
            t.detail
        ));
        let ok = t.outcome == Outcome::Ok;
        trials.push(t);
        progress(&partial(base, opts, &trials))?;
        Ok(ok)
    };
    let start = base.lanes;
    // (good, bad): largest known success, smallest known failure.
    let (mut good, mut bad) = if attempt(start)? {
        let mut good = start;
        let mut bad = None;
        while good < opts.max_lanes {
            let next = (good * 2).min(opts.max_lanes);
            if attempt(next)? {
                good = next;
            } else {
                bad = Some(next);
                break;
            }
        }
        (Some(good), bad)
    } else {
        (None, Some(start))
    };
    loop {
        let lo = good.unwrap_or(0);
        let Some(hi) = bad else { break };
        if hi - lo <= 1 {
            break;
        }
        let mid = next_candidate(board, base, opts, out, lo, hi)?;
        if attempt(mid)? {
            good = Some(mid);
        } else {
            bad = Some(mid);
        }
    }
    Ok(LaneSearch {
        complete: true,
        largest_fitting_lanes: good,
        ..partial(base, opts, &trials)
    })
}

/// What qualifies the lane search's verdict, if anything.
pub fn verdict_note(ls: &LaneSearch) -> String {
    let best = ls.largest_fitting_lanes.unwrap_or(0);
    let timed_out: Vec<String> = ls
        .trials
        .iter()
        .filter(|t| t.outcome == Outcome::TimedOut && t.lanes > best)
        .map(|t| t.lanes.to_string())
        .collect();
    if !ls.complete {
        " so far (search still running)".into()
    } else if ls.largest_fitting_lanes == Some(ls.max_lanes) {
        " (the --max-lanes bound: larger counts were not tried)".into()
    } else if !timed_out.is_empty() {
        format!(
            " among builds that finished within the {} min limit ({} lanes: timed out)",
            ls.build_timeout_min.unwrap_or(0.0),
            timed_out.join(", ")
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::bisection_point;

    #[test]
    fn bisection_prefers_a_free_count_near_the_midpoint() {
        assert_eq!(bisection_point(32, 40, &[]), 36);
        // The ULX3S search: 35, 37 and 38 built already, between 32 (ok) and 40 (not).
        assert_eq!(bisection_point(32, 40, &[35, 37, 38]), 35);
        assert_eq!(bisection_point(35, 40, &[35, 37, 38]), 37);
        assert_eq!(bisection_point(35, 37, &[35, 37, 38]), 36);
        // Counts outside the open interval are never chosen.
        assert_eq!(bisection_point(32, 36, &[32, 36, 40]), 34);
    }
}
