//! The one quantile of the project's measurements: wake latencies of a VM run, and the
//! repetitions and samples of the benchmarks. Pure, and built on every target, since the thread
//! benchmarks use it wherever they run.

/// The `q`-quantile (0..=1) of `values` by the nearest-rank method; `None` if empty.
///
/// ```
/// use haltpoll_bench::quantile::quantile;
/// assert_eq!(quantile(&[5.0, 1.0, 3.0], 0.5), Some(3.0));
/// assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.99), Some(4.0));
/// ```
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        assert_eq!(quantile(&[], 0.5), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
    }
}
