//! The normal distribution functions against published values and at their edges.

use greenlight::judge::{erfc, normal_cdf, normal_quantile, normal_sf};

fn assert_relative(actual: f64, expected: f64, what: &str) {
    let error = ((actual - expected) / expected).abs();
    assert!(
        error <= 1e-9,
        "{what}: {actual:e} against {expected:e} (relative error {error:e})"
    );
}

#[test]
fn known_values() {
    // Quantiles used for 90 %, 95 %, 98 % and 99 % confidence, and values of Φ, its upper
    // tail and erfc; references from mpmath at 30 significant digits.
    assert_relative(normal_quantile(0.975), 1.959_963_984_540_054, "z 0.975");
    assert_relative(normal_quantile(0.99), 2.326_347_874_040_841, "z 0.99");
    assert_relative(normal_quantile(0.995), 2.575_829_303_548_901, "z 0.995");
    assert_relative(normal_quantile(0.05), -1.644_853_626_951_472_2, "z 0.05");
    assert_relative(normal_cdf(1.96), 0.975_002_104_851_780, "Phi(1.96)");
    assert_relative(normal_cdf(1.0), 0.841_344_746_068_542_9, "Phi(1)");
    assert_relative(normal_sf(3.0), 1.349_898_031_630_094_6e-3, "Q(3)");
    assert_relative(normal_sf(5.0), 2.866_515_718_791_939e-7, "Q(5)");
    assert_relative(normal_sf(10.0), 7.619_853_024_160_527e-24, "Q(10)");
    assert_relative(erfc(0.5), 0.479_500_122_186_953_5, "erfc(0.5)");
    assert_relative(erfc(1.0), 0.157_299_207_050_285_13, "erfc(1)");
    assert_relative(erfc(-1.0), 1.842_700_792_949_715, "erfc(-1)");
    assert_relative(erfc(5.0), 1.537_459_794_428_034_8e-12, "erfc(5)");
    assert_eq!(normal_quantile(0.5), 0.0);
    assert_eq!(normal_cdf(0.0), 0.5);
}

#[test]
fn edges() {
    assert_eq!(erfc(f64::INFINITY), 0.0);
    assert_eq!(erfc(f64::NEG_INFINITY), 2.0);
    assert_eq!(erfc(30.0), 0.0);
    assert!(erfc(f64::NAN).is_nan());
    assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
    assert_eq!(normal_cdf(f64::INFINITY), 1.0);
    assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    assert_eq!(normal_quantile(1.0), f64::INFINITY);
    assert!(normal_quantile(-0.1).is_nan());
    assert!(normal_quantile(1.1).is_nan());
    assert!(normal_quantile(f64::NAN).is_nan());
}

#[test]
fn quantile_inverts_the_cdf_and_the_tails_are_symmetric() {
    for i in 1..2000 {
        let x = -9.0 + 18.0 * f64::from(i) / 2000.0;
        assert_relative(normal_cdf(x), normal_sf(-x), "symmetry");
        let p = normal_cdf(x);
        if x < 0.0 {
            // Φ⁻¹ is only as precise as p itself; 1 − Φ(x) for large x is not.
            assert!(
                (normal_quantile(p) - x).abs() <= 1e-9 * x.abs().max(1.0),
                "x = {x}"
            );
        }
        assert!(normal_cdf(x) <= normal_cdf(x + 1e-3), "monotone at {x}");
    }
}
