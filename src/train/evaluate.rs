//! Evaluation helpers (design §5): open a dataset folder of any supported layout, train on
//! `k` seeded shots, score the test set, compute the metrics. Nothing is ever chosen on the
//! test set: the detector is the last epoch's, and its calibration uses the shots only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::progress::{Progress, Stage};

use super::Trainer;
use crate::data::datasets::{Category, MvtecCategory, TestItem, Visa};
use crate::detector::model::{Detector, Normalization};
use crate::eval::{
    evaluate_image_level, evaluate_set, AuproVariant, PixelSet, SetMetrics, ThresholdOutcome,
};
use crate::image::{load_rgb, Image};
use crate::{Error, Result};

/// Opens the categories under `root`:
/// - VisA raw layout (`<root>/split_csv/1cls.csv`): every `object` of the CSV, or `category`;
/// - `root` itself an MVTec-layout category (`<root>/train/good`);
/// - otherwise an MVTec-layout dataset (MVTec AD, VisA converted): every sub-folder with
///   `train/good`, or `<root>/<category>`.
pub fn open_categories(root: &Path, category: Option<&str>) -> Result<Vec<Box<dyn Category>>> {
    if !root.is_dir() {
        return Err(Error::Dataset {
            path: root.to_path_buf(),
            message: "dataset folder does not exist".into(),
        });
    }
    let csv = root.join("split_csv").join("1cls.csv");
    if csv.is_file() {
        let names: Vec<String> = match category {
            Some(c) => vec![c.to_string()],
            None => visa_objects(&csv)?,
        };
        return names
            .iter()
            .map(|n| Ok(Box::new(Visa::open_raw(root, n)?) as Box<dyn Category>))
            .collect();
    }
    if root.join("train/good").is_dir() {
        let cat = MvtecCategory::open(root)?;
        if let Some(c) = category.filter(|c| *c != cat.name) {
            return Err(Error::Dataset {
                path: root.to_path_buf(),
                message: format!("this folder is the category `{}`, not `{c}`", cat.name),
            });
        }
        return Ok(vec![Box::new(cat)]);
    }
    match category {
        Some(c) => Ok(vec![Box::new(MvtecCategory::open(&root.join(c))?)]),
        None => Ok(MvtecCategory::list(root)?
            .into_iter()
            .map(|c| Box::new(c) as Box<dyn Category>)
            .collect()),
    }
}

/// The distinct `object` values of a VisA `1cls.csv`, sorted.
fn visa_objects(csv: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(csv).map_err(|e| Error::io(csv, e))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap_or_default();
    let col = header
        .split(',')
        .position(|h| h.trim() == "object")
        .ok_or_else(|| Error::Dataset {
            path: csv.to_path_buf(),
            message: "no `object` column in the header".into(),
        })?;
    let names: BTreeSet<String> = lines
        .filter_map(|l| l.split(',').nth(col).map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Err(Error::Dataset {
            path: csv.to_path_buf(),
            message: "no categories listed".into(),
        });
    }
    Ok(names.into_iter().collect())
}

/// Whether a test list has pixel labels: every defective image has a mask (`true`) or
/// none has (`false`, evaluated at image level). Some with and some without is an error
/// naming the first image without one.
pub fn pixel_labels(items: &[TestItem]) -> Result<bool> {
    let defective: Vec<&TestItem> = items.iter().filter(|i| i.label).collect();
    let with_mask = defective.iter().filter(|i| i.mask_path.is_some()).count();
    if with_mask == 0 {
        return Ok(false);
    }
    match defective.iter().find(|i| i.mask_path.is_none()) {
        None => Ok(true),
        Some(missing) => Err(Error::Dataset {
            path: missing.path.clone(),
            message: format!(
                "defective test image has no mask, while {with_mask} other defective image(s) \
                 have one: give every defective image a mask, or none (image-level evaluation)"
            ),
        }),
    }
}

/// A loaded test set at one image size.
#[derive(Debug, Clone)]
pub struct TestSet {
    /// The items (paths, labels, defect types).
    pub items: Vec<TestItem>,
    /// The images, `3 × S × S`.
    pub images: Vec<Image>,
    /// The ground-truth masks, `S × S` (all `false` where there is none).
    pub masks: Vec<Vec<bool>>,
    /// Whether every defective image has a ground-truth mask (pixel metrics are defined);
    /// `false` for an image-level set (OK/NG images without masks).
    pub pixel_labels: bool,
}

impl TestSet {
    /// Loads every test item of `category` at `size × size`, reporting to `progress`.
    pub fn load(category: &dyn Category, size: usize, progress: &Progress) -> Result<TestSet> {
        let items = category.test_items()?;
        let pixel_labels = pixel_labels(&items)?;
        let bar = progress.stage(Stage::TestSet, items.len() as u64);
        let (mut images, mut masks) = (Vec::new(), Vec::new());
        for it in &items {
            let (img, mask) = it.load(size)?;
            images.push(img);
            masks.push(mask.data.iter().map(|&v| v > 0.5).collect());
            bar.advance(1);
        }
        drop(bar);
        Ok(TestSet {
            items,
            images,
            masks,
            pixel_labels,
        })
    }

    /// Image labels (`true` = defective).
    pub fn labels(&self) -> Vec<bool> {
        self.items.iter().map(|i| i.label).collect()
    }
}

/// The maps, scores and metrics of one detector on one test set.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Anomaly map per test image (`S × S`).
    pub maps: Vec<Vec<f32>>,
    /// Image score per test image.
    pub scores: Vec<f32>,
    /// Image AUROC, pixel AUROC, AUPRO.
    pub metrics: SetMetrics,
    /// How the detector's stored pass/fail threshold does on this set; `None` under the
    /// transductive normalisation, whose scores live on another scale than the threshold.
    pub decisions: Option<ThresholdOutcome>,
}

/// Scores `test` with `detector` under `normalization` and computes the metrics (design §5).
pub fn evaluate(
    detector: &Detector,
    test: &TestSet,
    normalization: Normalization,
    variant: AuproVariant,
) -> Result<Evaluation> {
    let (maps, scores) = detector.predict_set(&test.images, normalization)?;
    let s = detector.image_size();
    let labels = test.labels();
    let metrics = if test.pixel_labels {
        let set = PixelSet::new(&maps, &test.masks, s, s)?;
        evaluate_set(&scores, &labels, &set, variant)?
    } else {
        evaluate_image_level(&scores, &labels, variant)?
    };
    let decisions = match normalization {
        Normalization::Calibrated => Some(ThresholdOutcome::of(
            &scores,
            &labels,
            detector.threshold(),
        )?),
        Normalization::Transductive(_) => None,
    };
    Ok(Evaluation {
        maps,
        scores,
        metrics,
        decisions,
    })
}

/// Chooses `shots` training images of `category` with `seed` (reproducible), loads them at
/// the trainer's image size and trains a detector. Returns it with the shot paths.
pub fn train_category(
    trainer: &Trainer,
    category: &dyn Category,
    shots: usize,
    seed: u64,
) -> Result<(Detector, Vec<PathBuf>)> {
    let paths = category.choose_shots(shots, seed)?;
    let size = trainer.config().image_size;
    let images = paths
        .iter()
        .map(|p| load_rgb(p, size))
        .collect::<Result<Vec<_>>>()?;
    Ok((trainer.fit(&images, category.name())?, paths))
}
