//! Small statistics for the sweep: median and spread of a point's repetitions, and the
//! least-squares line of hub RSS against subscribers (the marginal memory per subscriber).

/// Median of `v` (mean of the two middle values for an even count); `None` if empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

/// `(min, max)` of `v`; `None` if empty.
pub fn spread(v: &[f64]) -> Option<(f64, f64)> {
    let s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let lo = s.iter().copied().reduce(f64::min)?;
    let hi = s.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// A fitted line `y = intercept + slope · x`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Fit {
    /// dy/dx.
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// Coefficient of determination (1 = every point on the line).
    pub r2: f64,
    /// Points fitted.
    pub n: usize,
}

/// Least-squares line through `(x, y)` points; `None` with fewer than two distinct `x`.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my) * (p.1 - my)).sum();
    if sxx <= f64::EPSILON * nf * mx.abs().max(1.0) {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy > 0.0 { (sxy * sxy) / (sxx * syy) } else { 1.0 };
    Some(Fit { slope, intercept: my - slope * mx, r2, n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((1.0, 3.0)));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn a_line_is_recovered_and_its_slope_is_the_marginal_cost() {
        // 20 MiB base plus 4 KiB per subscriber, with a little noise.
        let pts: Vec<(f64, f64)> = [1000.0, 2000.0, 5000.0, 10000.0]
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, 20.0 * 1048576.0 + 4096.0 * x + if i % 2 == 0 { 5000.0 } else { -5000.0 }))
            .collect();
        let f = linear_fit(&pts).unwrap_or_else(|| panic!("no fit"));
        assert!((f.slope - 4096.0).abs() < 5.0, "{f:?}");
        assert!((f.intercept / 1048576.0 - 20.0).abs() < 0.05, "{f:?}");
        assert!(f.r2 > 0.999 && f.n == 4);
        assert_eq!(linear_fit(&[(1.0, 2.0)]), None);
        assert_eq!(linear_fit(&[(1.0, 2.0), (1.0, 3.0)]), None, "one distinct x has no slope");
    }
}
