//! SmartDeal fine-tuning by distillation (`docs/finetune.md`): the compressed network is
//! trained to reproduce the float network's outputs on unlabeled inputs, with its row masks
//! fixed, in two phases:
//!
//! 1. **masked** ([`param::MaskedDense`]): the float weights of every compressed layer with the
//!    pruned rows held at zero, trained so the masked network matches the float one; then the
//!    trained weights are decomposed (W ≈ Ce·B);
//! 2. **smartdeal** ([`param::SmartDealParam`]): `B` and the coefficient exponents trained
//!    directly, the forward pass using exactly the power-of-two coefficients the `.sdm` holds.
//!
//! [`train`] is the loop both phases and both networks share: AdamW with a linearly falling
//! learning rate, a seeded batch order, a loss log and checkpoints. [`bert`] and [`cnn`] are the
//! two networks' training graphs and losses.

pub mod bert;
pub mod cnn;
pub mod loss_plot;
pub mod param;
pub mod run;

use crate::NetError;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A phase's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainOptions {
    /// Optimizer steps (one batch each).
    pub steps: usize,
    /// Learning rate of the weights, bases and biases, at step 0 (falls linearly to 0).
    pub lr: f64,
    /// Learning rate of the coefficient exponents (SmartDeal phase), at step 0.
    pub lr_exponent: f64,
    /// Write the checkpoint every this many steps (and at the end); 0: only at the end.
    pub checkpoint_every: usize,
}

/// One line of the loss log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub phase: String,
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    /// Since the phase started (this run).
    pub seconds: f64,
}

/// Where a phase keeps its checkpoint: `<dir>/<phase>.safetensors` (the variables) and
/// `<dir>/<phase>.json` (the steps done and the log so far).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub phase: String,
    /// What the run's weights depend on besides the step count (masks, objective, data order,
    /// learning rates …): a checkpoint written with other settings is refused, not loaded.
    pub settings: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    #[serde(default)]
    settings: String,
    steps_done: usize,
    log: Vec<LogEntry>,
}

impl Checkpoint {
    fn tensors_path(&self) -> PathBuf {
        self.dir.join(format!("{}.safetensors", self.phase))
    }
    fn meta_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.phase))
    }

    fn save(&self, vars: &[(String, Var)], meta: &CheckpointMeta) -> Result<(), NetError> {
        let map: HashMap<String, Tensor> = vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        // Written beside, then renamed: an interrupted write never leaves a torn checkpoint.
        let tmp = self.tensors_path().with_extension("safetensors.tmp");
        candle_core::safetensors::save(&map, &tmp)?;
        std::fs::rename(&tmp, self.tensors_path()).map_err(|e| NetError::io(&tmp, e))?;
        let json = serde_json::to_vec_pretty(meta).expect("plain data");
        let p = self.meta_path();
        std::fs::write(&p, json).map_err(|e| NetError::io(&p, e))
    }

    /// The steps a checkpoint holds (0: none).
    pub fn steps_done(&self) -> usize {
        std::fs::read(self.meta_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<CheckpointMeta>(&b).ok())
            .map_or(0, |m| m.steps_done)
    }

    /// Removes the checkpoint (a later phase's, once the phase it started from has changed).
    pub fn remove(&self) -> Result<(), NetError> {
        for p in [self.tensors_path(), self.meta_path()] {
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| NetError::io(&p, e))?;
            }
        }
        Ok(())
    }

    /// Loads the variables and the steps done, if a checkpoint exists.
    fn load(&self, vars: &[(String, Var)]) -> Result<Option<CheckpointMeta>, NetError> {
        let (tp, mp) = (self.tensors_path(), self.meta_path());
        if !tp.exists() || !mp.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&mp).map_err(|e| NetError::io(&mp, e))?;
        let meta: CheckpointMeta = serde_json::from_slice(&bytes).map_err(|e| NetError::Model {
            path: mp.clone(),
            why: format!("not a checkpoint record: {e}"),
        })?;
        if meta.settings != self.settings {
            return Err(NetError::Model {
                path: mp,
                why: format!(
                    "a checkpoint made with other settings ({}; now {}): run without --resume",
                    meta.settings, self.settings
                ),
            });
        }
        let saved = candle_core::safetensors::load(&tp, &candle_core::Device::Cpu)?;
        for (name, var) in vars {
            let t = saved.get(name).ok_or_else(|| NetError::Model {
                path: tp.clone(),
                why: format!("no tensor `{name}`: a checkpoint of another model or phase"),
            })?;
            if t.dims() != var.dims() {
                return Err(NetError::Model {
                    path: tp.clone(),
                    why: format!(
                        "tensor `{name}` has shape {:?}, the model needs {:?}",
                        t.dims(),
                        var.dims()
                    ),
                });
            }
            var.set(t)?;
        }
        Ok(Some(meta))
    }
}

/// The learning rate at `step` of `steps`: linear from `lr0` down to 0.
pub fn lr_at(lr0: f64, step: usize, steps: usize) -> f64 {
    lr0 * (1.0 - step as f64 / steps.max(1) as f64)
}

/// Runs a phase: `steps` AdamW steps of `loss(step)`, the slow variables at `opts.lr`, the fast
/// ones at `opts.lr_exponent`, both falling linearly to 0; resumes from `ckpt` when it holds
/// earlier steps of this phase (the optimizer's moments start again from zero). `on_step(step,
/// loss)` is called after each step. Returns the phase's loss log.
pub fn train(
    slow: Vec<Var>,
    fast: Vec<Var>,
    named: &[(String, Var)],
    opts: &TrainOptions,
    ckpt: Option<&Checkpoint>,
    loss: &mut dyn FnMut(usize) -> Result<Tensor, NetError>,
    on_step: &dyn Fn(usize, f64),
) -> Result<Vec<LogEntry>, NetError> {
    let phase = ckpt.map_or("train".to_string(), |c| c.phase.clone());
    let mut meta = match ckpt {
        Some(c) => c.load(named)?.unwrap_or(CheckpointMeta {
            settings: c.settings.clone(),
            steps_done: 0,
            log: vec![],
        }),
        None => CheckpointMeta {
            settings: String::new(),
            steps_done: 0,
            log: vec![],
        },
    };
    let params = |lr| ParamsAdamW {
        lr,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let mut opt_slow = AdamW::new(slow, params(opts.lr))?;
    let mut opt_fast = AdamW::new(fast, params(opts.lr_exponent))?;
    let t0 = Instant::now();
    for step in meta.steps_done..opts.steps {
        let lr = lr_at(opts.lr, step, opts.steps);
        opt_slow.set_learning_rate(lr);
        opt_fast.set_learning_rate(lr_at(opts.lr_exponent, step, opts.steps));
        let l = loss(step)?;
        let value = f64::from(l.to_scalar::<f32>()?);
        if !value.is_finite() {
            return Err(NetError::Tensor(format!(
                "{phase}: the loss is {value} at step {step} (lower the learning rate)"
            )));
        }
        let grads = l.backward()?;
        opt_slow.step(&grads)?;
        opt_fast.step(&grads)?;
        meta.steps_done = step + 1;
        meta.log.push(LogEntry {
            phase: phase.clone(),
            step,
            loss: value,
            lr,
            seconds: t0.elapsed().as_secs_f64(),
        });
        on_step(step, value);
        let due = opts.checkpoint_every > 0 && meta.steps_done % opts.checkpoint_every == 0;
        if let Some(c) = ckpt {
            if due || meta.steps_done == opts.steps {
                c.save(named, &meta)?;
            }
        }
    }
    if let (Some(c), true) = (ckpt, opts.steps == 0) {
        c.save(named, &meta)?;
    }
    Ok(meta.log)
}

/// Writes the loss log as CSV (`phase,step,loss,lr,seconds`).
pub fn write_log(path: &Path, log: &[LogEntry]) -> Result<(), NetError> {
    let mut s = String::from("phase,step,loss,lr,seconds\n");
    for e in log {
        s.push_str(&format!(
            "{},{},{:.6e},{:.3e},{:.1}\n",
            e.phase, e.step, e.loss, e.lr, e.seconds
        ));
    }
    std::fs::write(path, s).map_err(|e| NetError::io(path, e))
}

/// The process's peak resident memory in bytes (`VmHWM` of `/proc/self/status`; `None` where
/// there is no such file).
pub fn peak_memory_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn learning_rate_falls_linearly_to_zero() {
        assert_eq!(lr_at(1e-2, 0, 10), 1e-2);
        assert!((lr_at(1e-2, 5, 10) - 5e-3).abs() < 1e-15);
        assert!(lr_at(1e-2, 9, 10) > 0.0);
    }

    /// A least-squares fit trained, checkpointed half way, and resumed: the resumed run ends
    /// where the checkpoint left it plus the remaining steps, and the loss falls.
    #[test]
    fn trains_checkpoints_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let target = Tensor::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap();
        let run = |steps: usize, w: &Var| -> Vec<LogEntry> {
            let named = vec![("w".to_string(), w.clone())];
            let ck = Checkpoint {
                dir: dir.path().to_path_buf(),
                phase: "p".into(),
                settings: "s".into(),
            };
            let opts = TrainOptions {
                steps,
                lr: 0.1,
                lr_exponent: 0.0,
                checkpoint_every: 0,
            };
            let mut loss = |_| Ok((w.as_tensor() - &target)?.sqr()?.sum_all()?);
            train(
                vec![w.clone()],
                vec![],
                &named,
                &opts,
                Some(&ck),
                &mut loss,
                &|_, _| {},
            )
            .unwrap()
        };
        let w = Var::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        let first = run(40, &w);
        assert_eq!(first.len(), 40);
        assert!(
            first[39].loss < 0.5 * first[0].loss,
            "{:?}",
            (first[0].loss, first[39].loss)
        );
        // A fresh variable resumes from the checkpoint: only the missing steps run.
        let w2 = Var::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        let more = run(60, &w2);
        assert_eq!(more.len(), 60);
        assert_eq!(more[40].step, 40);
        assert!(more[40].loss < first[0].loss);
        // Other settings: refused with a one-line error naming both.
        let other = Checkpoint {
            dir: dir.path().to_path_buf(),
            phase: "p".into(),
            settings: "t".into(),
        };
        let w4 = Var::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = other
            .load(&[("w".to_string(), w4)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("other settings (s; now t)") && !e.contains('\n'),
            "{e}"
        );
        // Finished: a third run trains nothing and returns the same log.
        let w3 = Var::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        let again = run(60, &w3);
        assert_eq!(again.len(), more.len());
        for (a, b) in again.iter().zip(&more) {
            // The log went through JSON: equal up to the last digit.
            assert!(a.step == b.step && (a.loss - b.loss).abs() <= 1e-9 * b.loss.abs());
        }
        assert_eq!(
            w3.as_tensor().to_vec1::<f32>().unwrap(),
            w2.as_tensor().to_vec1::<f32>().unwrap()
        );
    }
}
