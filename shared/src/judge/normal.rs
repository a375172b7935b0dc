//! The standard normal distribution: `erfc`, its CDF Φ, upper tail 1 − Φ and quantile Φ⁻¹.
//!
//! - `erfc` uses W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev
//!   approximations for the error function", Math. Comp. 23 (1969) 631–638; the coefficient
//!   sets of his SPECFUN routine CALERF), accurate to about 1e-16 relative on the whole line.
//! - Φ⁻¹ uses M. J. Wichura's algorithm AS 241, PPND16 ("The percentage points of the normal
//!   distribution", Applied Statistics 37 (1988) 477–484), accurate to about 1e-16 relative.
//!
//! Tail probabilities are computed from the tail itself (`normal_sf(x)` is not `1 − Φ(x)`), so
//! p-values as small as 1e-300 keep their relative precision.

// The coefficient tables keep the digits as published, more than an f64 holds.
#![allow(clippy::excessive_precision)]

use std::f64::consts::FRAC_1_SQRT_2;

/// 1/√π.
const FRAC_1_SQRT_PI: f64 = 5.641_895_835_477_562_869_5e-1;

/// Below this |x|, erf(x) = x·(2/√π) to machine precision and x² may underflow.
const XSMALL: f64 = 1.11e-16;
/// Above this x, erfc(x) underflows the smallest normal f64.
const XBIG: f64 = 26.543;

// erf(x) = x·A(x²)/B(x²) for |x| ≤ 0.46875.
const A: [f64; 5] = [
    3.161_123_743_870_565_60e0,
    1.138_641_541_510_501_56e2,
    3.774_852_376_853_020_21e2,
    3.209_377_589_138_469_47e3,
    1.857_777_061_846_031_53e-1,
];
const B: [f64; 4] = [
    2.360_129_095_234_412_09e1,
    2.440_246_379_344_441_73e2,
    1.282_616_526_077_372_28e3,
    2.844_236_833_439_170_62e3,
];
// erfc(x) = exp(−x²)·C(x)/D(x) for 0.46875 < x ≤ 4.
const C: [f64; 9] = [
    5.641_884_969_886_700_89e-1,
    8.883_149_794_388_375_94e0,
    6.611_919_063_714_162_95e1,
    2.986_351_381_974_001_31e2,
    8.819_522_212_417_690_90e2,
    1.712_047_612_634_070_58e3,
    2.051_078_377_826_071_47e3,
    1.230_339_354_797_997_25e3,
    2.153_115_354_744_038_46e-8,
];
const D: [f64; 8] = [
    1.574_492_611_070_983_47e1,
    1.176_939_508_913_124_99e2,
    5.371_811_018_620_098_58e2,
    1.621_389_574_566_690_19e3,
    3.290_799_235_733_459_63e3,
    4.362_619_090_143_247_16e3,
    3.439_367_674_143_721_64e3,
    1.230_339_354_803_749_42e3,
];
// erfc(x) = exp(−x²)/x·(1/√π − z·P(z)/Q(z)), z = 1/x², for x > 4.
const P: [f64; 6] = [
    3.053_266_349_612_323_44e-1,
    3.603_448_999_498_044_39e-1,
    1.257_817_261_112_292_46e-1,
    1.608_378_514_874_227_66e-2,
    6.587_491_615_298_378_03e-4,
    1.631_538_713_730_209_78e-2,
];
const Q: [f64; 5] = [
    2.568_520_192_289_822_42e0,
    1.872_952_849_923_460_47e0,
    5.279_051_029_514_284_12e-1,
    6.051_834_131_244_131_91e-2,
    2.335_204_976_268_691_85e-3,
];

/// The complementary error function erfc(x) = (2/√π)∫ₓ^∞ exp(−t²) dt.
///
/// Returns NaN for NaN, 2 at −∞ and 0 at +∞ (and for x above 26.543, where erfc underflows).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let y = x.abs();
    if y <= 0.468_75 {
        // erfc = 1 − erf; the rational form of erf is odd, so it takes x with its sign.
        let z = if y > XSMALL { y * y } else { 0.0 };
        let mut num = A[4] * z;
        let mut den = z;
        for (a, b) in A[..3].iter().zip(&B[..3]) {
            num = (num + a) * z;
            den = (den + b) * z;
        }
        return 1.0 - x * (num + A[3]) / (den + B[3]);
    }
    let upper = if y <= 4.0 {
        let mut num = C[8] * y;
        let mut den = y;
        for (c, d) in C[..7].iter().zip(&D[..7]) {
            num = (num + c) * y;
            den = (den + d) * y;
        }
        (num + C[7]) / (den + D[7]) * exp_minus_square(y)
    } else if y < XBIG {
        let z = 1.0 / (y * y);
        let mut num = P[5] * z;
        let mut den = z;
        for (p, q) in P[..4].iter().zip(&Q[..4]) {
            num = (num + p) * z;
            den = (den + q) * z;
        }
        let r = z * (num + P[4]) / (den + Q[4]);
        (FRAC_1_SQRT_PI - r) / y * exp_minus_square(y)
    } else {
        0.0
    };
    if x < 0.0 { 2.0 - upper } else { upper }
}

/// exp(−y²) without the rounding error of y²: y is split into s = ⌊16y⌋/16, whose square is
/// exact, and the rest, exp(−y²) = exp(−s²)·exp(−(y − s)(y + s)) (Cody's CALERF does the same).
fn exp_minus_square(y: f64) -> f64 {
    let s = (y * 16.0).trunc() / 16.0;
    let rest = (y - s) * (y + s);
    (-s * s).exp() * (-rest).exp()
}

/// The standard normal CDF Φ(x) = P(Z ≤ x) = erfc(−x/√2)/2.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// The standard normal upper tail 1 − Φ(x) = P(Z > x) = erfc(x/√2)/2, without cancellation.
pub fn normal_sf(x: f64) -> f64 {
    0.5 * erfc(x * FRAC_1_SQRT_2)
}

// Φ⁻¹(p) = q·A(r)/B(r), r = 0.180625 − q², q = p − 1/2, for |q| ≤ 0.425.
const QA: [f64; 8] = [
    3.387_132_872_796_366_608_0e0,
    1.331_416_678_917_843_774_5e2,
    1.971_590_950_306_551_442_7e3,
    1.373_169_376_550_946_112_5e4,
    4.592_195_393_154_987_145_7e4,
    6.726_577_092_700_870_085_3e4,
    3.343_057_558_358_812_810_5e4,
    2.509_080_928_730_122_672_7e3,
];
const QB: [f64; 8] = [
    1.0,
    4.231_333_070_160_091_125_2e1,
    6.871_870_074_920_579_083_0e2,
    5.394_196_021_424_751_107_7e3,
    2.121_379_430_158_659_586_7e4,
    3.930_789_580_009_271_061_0e4,
    2.872_908_573_572_194_267_4e4,
    5.226_495_278_852_854_561_0e3,
];
// Tails with r = √(−ln min(p, 1 − p)) ≤ 5: C(r − 1.6)/D(r − 1.6).
const QC: [f64; 8] = [
    1.423_437_110_749_683_577_34e0,
    4.630_337_846_156_545_295_90e0,
    5.769_497_221_460_691_405_50e0,
    3.647_848_324_763_204_605_04e0,
    1.270_458_252_452_368_382_58e0,
    2.417_807_251_774_506_117_70e-1,
    2.272_384_498_926_918_458_33e-2,
    7.745_450_142_783_414_076_40e-4,
];
const QD: [f64; 8] = [
    1.0,
    2.053_191_626_637_758_821_87e0,
    1.676_384_830_183_803_849_40e0,
    6.897_673_349_851_000_045_50e-1,
    1.481_039_764_274_800_745_90e-1,
    1.519_866_656_361_645_719_66e-2,
    5.475_938_084_995_344_946_00e-4,
    1.050_750_071_644_416_843_24e-9,
];
// Far tails, r > 5: E(r − 5)/F(r − 5).
const QE: [f64; 8] = [
    6.657_904_643_501_103_777_20e0,
    5.463_784_911_164_114_369_90e0,
    1.784_826_539_917_291_335_80e0,
    2.965_605_718_285_048_912_30e-1,
    2.653_218_952_657_612_309_30e-2,
    1.242_660_947_388_078_438_60e-3,
    2.711_555_568_743_487_578_15e-5,
    2.010_334_399_292_288_132_65e-7,
];
const QF: [f64; 8] = [
    1.0,
    5.998_322_065_558_879_376_90e-1,
    1.369_298_809_227_358_053_10e-1,
    1.487_536_129_085_061_485_25e-2,
    7.868_691_311_456_132_591_00e-4,
    1.846_318_317_510_054_681_80e-5,
    1.421_511_758_316_445_888_70e-7,
    2.044_263_103_389_939_785_64e-15,
];

/// Horner evaluation of c[0] + c[1]·x + … + c[7]·x⁷.
fn poly(c: &[f64; 8], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &k| acc * x + k)
}

/// The standard normal quantile Φ⁻¹(p): the x with Φ(x) = p.
///
/// Returns −∞ at p = 0, +∞ at p = 1 and NaN outside [0, 1]. For an upper-tail probability α,
/// `-normal_quantile(α)` is more precise than `normal_quantile(1.0 - α)`.
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * poly(&QA, r) / poly(&QB, r);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let x = if r <= 5.0 {
        poly(&QC, r - 1.6) / poly(&QD, r - 1.6)
    } else {
        poly(&QE, r - 5.0) / poly(&QF, r - 5.0)
    };
    if q < 0.0 { -x } else { x }
}
