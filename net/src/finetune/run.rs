//! The fine-tuning recipe for a whole network: row masks, the masked phase, the decomposition
//! of the trained weights, the SmartDeal phase (`docs/finetune.md`).

use super::param::{row_mask, CodeWindow, MaskedDense, SmartDealParam, Weights};
use super::{bert, cnn, train, Checkpoint, LogEntry, TrainOptions};
use crate::minilm::{MiniLm, Tokens};
use crate::mnist::{MnistNet, LAYERS};
use crate::NetError;
use candle_core::{Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use smartdeal_decomp::block::Options as BlockOptions;
use smartdeal_decomp::budget::{global_masks, Budget, LayerRows};
use smartdeal_decomp::layer::{
    decompose_tensor_masked, tensor_prune_mask, FloatLayer, LayerOptions, RowMask,
};
use smartdeal_decomp::linalg::M3;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;

/// The Ce row density of each compressed layer: `default`, or the layer's own.
#[derive(Debug, Clone, PartialEq)]
pub struct Densities {
    pub default: f64,
    pub per_layer: BTreeMap<String, f64>,
}

impl Densities {
    pub fn of(&self, layer: &str) -> f64 {
        *self.per_layer.get(layer).unwrap_or(&self.default)
    }
}

/// Everything the recipe needs besides the network and its data.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub densities: Densities,
    /// The decomposition of the masked-phase weights (its threshold, iterations).
    pub block: BlockOptions,
    /// Output channels sharing one row mask.
    pub group_size: usize,
    /// Per layer, the second moments of each Ce row's inputs (from calibration): the output
    /// objective. Rows are then kept by their effect on the outputs, not by their weights'
    /// size, and the decomposition minimizes the output error. Empty: the weight objective.
    pub moments: BTreeMap<String, Vec<M3>>,
    /// [`Budget::Global`]: one density (`densities.default`) spread over all layers by each
    /// row's share of its layer's output (`densities.per_layer` must be empty).
    pub budget: Budget,
    /// Train the exponents inside the integer conversion's code window (`None`: inside each
    /// layer's initial range).
    pub window: Option<CodeWindow>,
    pub masked: TrainOptions,
    pub smartdeal: TrainOptions,
    /// Sentences or images per step.
    pub batch: usize,
    pub seed: u64,
    /// Checkpoints go here (`masked.*`, `smartdeal.*`); `None`: no checkpoints.
    pub dir: Option<PathBuf>,
}

impl Recipe {
    /// Everything a checkpoint's weights depend on besides the step counts (which a resumed
    /// run may raise).
    fn settings(&self) -> String {
        let lrs = |t: &TrainOptions| format!("{:e}/{:e}", t.lr, t.lr_exponent);
        format!(
            "densities {:?} {:?}, {:?} budget, {} objective, threshold {:e}, {} iterations, \
             group {}, window {:?}, batch {}, seed {}, lr {} then {}",
            self.densities.default,
            self.densities.per_layer,
            self.budget,
            if self.moments.is_empty() {
                "weight"
            } else {
                "output"
            },
            self.block.threshold,
            self.block.iters,
            self.group_size,
            self.window,
            self.batch,
            self.seed,
            lrs(&self.masked),
            lrs(&self.smartdeal)
        )
    }
}

/// A compressed layer after fine-tuning: its float decomposition and trained bias.
pub struct Tuned {
    pub name: String,
    pub layer: FloatLayer,
    pub bias: Vec<f32>,
}

/// What the recipe reports as it goes: the phase's name, the step and the loss; and, between
/// phases, a stage message.
pub trait Observer {
    fn phase(&self, name: &str, steps: usize);
    fn step(&self, step: usize, loss: f64);
}

/// A layer to compress: its name, float weights (C order), shape and bias.
struct Source {
    name: String,
    w: Vec<f32>,
    shape: Vec<usize>,
    bias: Vec<f32>,
}

impl Source {
    fn outputs(&self) -> usize {
        self.shape[0]
    }
    fn per_out(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// The rows pruned at `density` (the decomposition's structural pruning,
    /// `smartdeal_decomp::layer::tensor_prune_mask`), scored by the input moments if given.
    fn mask(
        &self,
        density: f64,
        group: usize,
        moments: Option<&[M3]>,
    ) -> Result<RowMask, NetError> {
        tensor_prune_mask(&self.shape, &self.w, group, 1.0 - density, moments)
            .map_err(|why| NetError::Compress(format!("layer `{}`: {why}", self.name)))
    }

    /// `mask` as 0/1 per weight (C order).
    fn weight_mask(&self, mask: &RowMask) -> Vec<f32> {
        row_mask(self.outputs(), self.per_out(), |o, r| mask.is_pruned(o, r))
    }
}

/// Every source's pruned rows: per layer at its density, or by one global budget.
fn masks(sources: &[Source], recipe: &Recipe) -> Result<Vec<RowMask>, NetError> {
    let moments = |s: &Source| recipe.moments.get(&s.name).map(Vec::as_slice);
    match recipe.budget {
        Budget::Layer => sources
            .iter()
            .map(|s| s.mask(recipe.densities.of(&s.name), recipe.group_size, moments(s)))
            .collect(),
        Budget::Global => {
            if !recipe.densities.per_layer.is_empty() {
                return Err(NetError::Compress(
                    "per-layer densities and a global budget exclude each other".into(),
                ));
            }
            let rows: Vec<LayerRows> = sources
                .iter()
                .map(|s| LayerRows {
                    shape: &s.shape,
                    data: &s.w,
                    moments: moments(s),
                })
                .collect();
            global_masks(&rows, recipe.group_size, recipe.densities.default)
                .map_err(NetError::Compress)
        }
    }
}

fn ckpt(recipe: &Recipe, phase: &str) -> Option<Checkpoint> {
    recipe.dir.as_ref().map(|d| Checkpoint {
        dir: d.clone(),
        phase: phase.into(),
        settings: recipe.settings(),
    })
}

type Layers<'a> = BTreeMap<String, Box<dyn Weights + 'a>>;

fn vars_of(layers: &Layers<'_>) -> (Vec<Var>, Vec<Var>) {
    let (mut slow, mut fast) = (vec![], vec![]);
    for p in layers.values() {
        let (s, f) = p.vars();
        slow.extend(s);
        fast.extend(f);
    }
    (slow, fast)
}

/// The two phases over `sources`, with `step_loss(layers, step)` the network's distillation
/// loss on step `step`'s batch.
fn recipe_phases(
    sources: &[Source],
    recipe: &Recipe,
    obs: &dyn Observer,
    step_loss: &dyn Fn(&Layers<'_>, usize) -> Result<Tensor, NetError>,
) -> Result<(Vec<Tuned>, Vec<LogEntry>), NetError> {
    // Phase 1: masked float weights.
    let masks = masks(sources, recipe)?;
    let mut dense: BTreeMap<String, MaskedDense> = BTreeMap::new();
    for (s, m) in sources.iter().zip(&masks) {
        let w = s.weight_mask(m);
        dense.insert(
            s.name.clone(),
            MaskedDense::new(&s.w, &s.shape, &w, &s.bias)?,
        );
    }
    let named: Vec<(String, Var)> = dense.iter().flat_map(|(n, d)| d.named(n)).collect();
    let masked: Layers<'_> = dense
        .iter()
        .map(|(n, d)| (n.clone(), Box::new(d) as Box<dyn Weights>))
        .collect();
    let (slow, fast) = vars_of(&masked);
    obs.phase("masked", recipe.masked.steps);
    let masked_ckpt = ckpt(recipe, "masked");
    let before = masked_ckpt.as_ref().map_or(0, Checkpoint::steps_done);
    let mut log = train(
        slow,
        fast,
        &named,
        &recipe.masked,
        masked_ckpt.as_ref(),
        &mut |step| step_loss(&masked, step),
        &|step, loss| obs.step(step, loss),
    )?;
    if log.len() > before {
        // The masked weights moved in this run (e.g. resumed with more steps): a SmartDeal
        // checkpoint from an earlier run started from other weights and must not be loaded.
        if let Some(c) = ckpt(recipe, "smartdeal") {
            c.remove()?;
        }
    }

    // The trained weights decomposed under the same masks (the pruned rows are zero already),
    // by the recipe's objective.
    obs.phase("decompose", sources.len());
    let lo = LayerOptions {
        block: recipe.block.clone(),
        group_size: recipe.group_size,
        prune_ratio: 0.0,
    };
    let mut sd: BTreeMap<String, SmartDealParam> = BTreeMap::new();
    for (i, (s, m)) in sources.iter().zip(&masks).enumerate() {
        let d = &dense[&s.name];
        let h = recipe.moments.get(&s.name).map(Vec::as_slice);
        let fl = decompose_tensor_masked(&s.name, &s.shape, &d.values()?, &lo, h, Some(m), &|_| {})
            .map_err(|why| NetError::Compress(format!("layer `{}`: {why}", s.name)))?;
        sd.insert(
            s.name.clone(),
            SmartDealParam::new(&fl, &d.bias_values()?, &s.shape, recipe.window)?,
        );
        obs.step(i, 0.0);
    }

    // Phase 2: B and the exponents.
    let named: Vec<(String, Var)> = sd.iter().flat_map(|(n, p)| p.named(n)).collect();
    let layers: Layers<'_> = sd
        .iter()
        .map(|(n, p)| (n.clone(), Box::new(p) as Box<dyn Weights>))
        .collect();
    let (slow, fast) = vars_of(&layers);
    obs.phase("smartdeal", recipe.smartdeal.steps);
    log.extend(train(
        slow,
        fast,
        &named,
        &recipe.smartdeal,
        ckpt(recipe, "smartdeal").as_ref(),
        &mut |step| step_loss(&layers, step),
        &|step, loss| obs.step(step, loss),
    )?);
    let tuned = sources
        .iter()
        .map(|s| {
            let p = &sd[&s.name];
            Ok(Tuned {
                name: s.name.clone(),
                layer: p.to_float_layer()?,
                bias: p.bias_values()?,
            })
        })
        .collect::<Result<Vec<_>, NetError>>()?;
    Ok((tuned, log))
}

/// A seeded permutation of `0..n` for epoch `epoch`.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9));
    order.shuffle(&mut rng);
    order
}

/// Fine-tunes all-MiniLM-L6-v2's encoder linear layers on `train` sentences (tokenized).
pub fn minilm(
    m: &MiniLm,
    train_set: &[Tokens],
    recipe: &Recipe,
    obs: &dyn Observer,
) -> Result<(Vec<Tuned>, Vec<LogEntry>), NetError> {
    if train_set.is_empty() {
        return Err(NetError::Compress("no training sentences".into()));
    }
    let mut sources = Vec::new();
    for name in m.linear_names() {
        let w = m.tensor(&format!("{name}.weight"))?;
        sources.push(Source {
            shape: w.dims().to_vec(),
            w: w.flatten_all()?.to_vec1::<f32>()?,
            bias: m.tensor(&format!("{name}.bias"))?.to_vec1::<f32>()?,
            name,
        });
    }
    let lens: Vec<usize> = train_set.iter().map(|t| t.ids.len()).collect();
    let batches = bert::length_batches(&lens, recipe.batch);
    // The teacher's outputs per batch, kept for later epochs and the second phase: a quarter
    // of a step's work, for about 6 MB per batch of 64 sentences.
    let teacher_cache: RefCell<HashMap<usize, Rc<bert::Forward>>> = RefCell::default();
    let step_loss = |layers: &Layers<'_>, step: usize| -> Result<Tensor, NetError> {
        let epoch = (step / batches.len()) as u64;
        let bi = epoch_order(batches.len(), recipe.seed, epoch)[step % batches.len()];
        let toks: Vec<Tokens> = batches[bi].iter().map(|&i| train_set[i].clone()).collect();
        let cached = teacher_cache.borrow().get(&bi).cloned();
        let teacher = match cached {
            Some(t) => t,
            None => {
                let t = Rc::new(bert::forward(m, &toks, &bert::Teacher(m))?);
                teacher_cache.borrow_mut().insert(bi, t.clone());
                t
            }
        };
        let student = bert::forward(m, &toks, &bert::Student(layers))?;
        bert::loss(&student, &teacher)
    };
    recipe_phases(&sources, recipe, obs, &step_loss)
}

/// Fine-tunes the MNIST CNN's four layers on augmented copies of `pool` (raw pixels of the
/// digits set aside from scoring).
pub fn mnist(
    net: &MnistNet,
    pool: &[f32],
    recipe: &Recipe,
    obs: &dyn Observer,
) -> Result<(Vec<Tuned>, Vec<LogEntry>), NetError> {
    if pool.is_empty() {
        return Err(NetError::Compress("no training images".into()));
    }
    let mut sources = Vec::new();
    for (i, spec) in LAYERS.iter().enumerate() {
        sources.push(Source {
            name: spec.name.to_string(),
            w: net.weight(i).flatten_all()?.to_vec1::<f32>()?,
            shape: spec.shape.to_vec(),
            bias: net.bias(i).to_vec1::<f32>()?,
        });
    }
    let step_loss = |layers: &Layers<'_>, step: usize| -> Result<Tensor, NetError> {
        // Seeded per step, so a resumed run sees the batches an uninterrupted one would.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            recipe.seed.wrapping_mul(1_000_003) ^ step as u64,
        );
        let x = cnn::augmented_batch(pool, recipe.batch, &mut rng)?;
        let ordered: Vec<Box<dyn Weights + '_>> = LAYERS
            .iter()
            .map(|s| Box::new(layers[s.name].as_ref()) as Box<dyn Weights>)
            .collect();
        let student = cnn::student_trace(&x, &ordered)?;
        // The teacher's trace carries no gradient: its weights are plain tensors.
        cnn::loss(&student, &net.trace(&x)?)
    };
    recipe_phases(&sources, recipe, obs, &step_loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_density_per_group() {
        // 4 channels × 12 inputs (4 rows), groups of 2, density 0.5: 2 rows of each group go.
        let w: Vec<f32> = (0..48).map(|i| (i % 12) as f32 + 1.0).collect();
        let s = Source {
            name: "l".into(),
            w,
            shape: vec![4, 12],
            bias: vec![0.0; 4],
        };
        let m = s.weight_mask(&s.mask(0.5, 2, None).unwrap());
        for o in 0..4 {
            let kept: Vec<f32> = m[o * 12..(o + 1) * 12].to_vec();
            // Rows 0 and 1 have the smallest L1 norms (weights 1..6).
            assert_eq!(kept, [0., 0., 0., 0., 0., 0., 1., 1., 1., 1., 1., 1.]);
        }
        assert!(s
            .weight_mask(&s.mask(1.0, 2, None).unwrap())
            .iter()
            .all(|v| *v == 1.0));
    }
}
