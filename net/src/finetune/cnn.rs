//! The MNIST CNN for training: the float graph ([`crate::mnist::trace_with`]) with a student's
//! weights, the distillation loss over every layer's output, and the augmented batches of
//! set-aside digits it trains on.

use super::param::Weights;
use crate::digits::PIXELS;
use crate::mnist::{input, trace_with, Trace, SIDE};
use crate::NetError;
use candle_core::Tensor;
use rand::Rng;

/// The student's layers in `LAYERS` order.
pub fn student_trace(x: &Tensor, layers: &[Box<dyn Weights + '_>]) -> Result<Trace, NetError> {
    trace_with(x, &|i| Ok((layers[i].weight()?, layers[i].bias().clone())))
}

/// `Σ_layers ‖y_s − y_t‖² / ‖y_t‖²` over the four layers' outputs (three ReLU feature maps and
/// the logits): each layer's output matched relative to its own size, so the small logits
/// count as much as the large feature maps.
pub fn loss(student: &Trace, teacher: &Trace) -> Result<Tensor, NetError> {
    let mut total = Tensor::zeros((), candle_core::DType::F32, &candle_core::Device::Cpu)?;
    for (s, t) in student.outputs.iter().zip(&teacher.outputs) {
        let denom = f64::from(t.sqr()?.sum_all()?.to_scalar::<f32>()?).max(1e-12);
        total = (total + ((s - t)?.sqr()?.sum_all()? / denom)?)?;
    }
    Ok(total)
}

/// Largest shift of the augmentation, in pixels.
pub const MAX_SHIFT: i32 = 2;

/// `n` images drawn from `pool` (raw pixels, `[k][784]`), each moved by a random shift of up to
/// [`MAX_SHIFT`] pixels in each direction (zero fill), as a normalized `[n, 1, 28, 28]` input.
/// The pool is small (the digits set aside from scoring), so the shifts give the student more
/// than a few hundred distinct inputs to match the teacher on.
pub fn augmented_batch(pool: &[f32], n: usize, rng: &mut impl Rng) -> Result<Tensor, NetError> {
    let count = pool.len() / PIXELS;
    let side = SIDE as i32;
    let mut out = vec![0f32; n * PIXELS];
    for img in out.chunks_mut(PIXELS) {
        let src = &pool[rng.gen_range(0..count) * PIXELS..][..PIXELS];
        let dy = rng.gen_range(-MAX_SHIFT..=MAX_SHIFT);
        let dx = rng.gen_range(-MAX_SHIFT..=MAX_SHIFT);
        for y in 0..side {
            for x in 0..side {
                let (sy, sx) = (y - dy, x - dx);
                if (0..side).contains(&sy) && (0..side).contains(&sx) {
                    img[(y * side + x) as usize] = src[(sy * side + sx) as usize];
                }
            }
        }
    }
    input(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn augmentation_shifts_within_bounds_and_keeps_the_ink() {
        // One image with a single lit pixel in the middle: every augmented copy has exactly one
        // lit pixel, at most MAX_SHIFT away.
        let mut pool = vec![0f32; PIXELS];
        pool[14 * 28 + 14] = 1.0;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let x = augmented_batch(&pool, 50, &mut rng).unwrap();
        assert_eq!(x.dims(), &[50, 1, 28, 28]);
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let lit = crate::mnist::normalize(1.0);
        let mut moved = false;
        for img in v.chunks(PIXELS) {
            let at: Vec<usize> = (0..PIXELS).filter(|&i| img[i] == lit).collect();
            assert_eq!(at.len(), 1);
            let (y, x) = ((at[0] / 28) as i32, (at[0] % 28) as i32);
            assert!((y - 14).abs() <= MAX_SHIFT && (x - 14).abs() <= MAX_SHIFT);
            moved |= (y, x) != (14, 14);
        }
        assert!(moved);
    }
}
