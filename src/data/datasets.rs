//! Dataset readers (design §5): MVTec AD, VisA (raw layout with `split_csv/1cls.csv`, and the
//! MVTec-like converted layout) and a generic layout (a folder of good images, folders of
//! test images, optional masks).
//!
//! Every reader yields the training images (`train/good` or equivalent) and [`TestItem`]s.
//! Nothing is skipped silently: a defective test image without its mask, a listed file that
//! does not exist, a category without `train/good` are errors naming the path, unless the
//! reader was told to accept missing masks ([`MvtecCategory::allow_missing_masks`]).

use std::path::{Path, PathBuf};

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::textures::is_image_file;
use crate::error::{Error, Result};
use crate::image::{image_dimensions, load_mask, load_rgb, Image};

/// One test image with its ground truth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestItem {
    /// The image file.
    pub path: PathBuf,
    /// `true` for a defective (anomalous) image.
    pub label: bool,
    /// `"good"` for normal images, otherwise the defect folder name (VisA raw: `"anomaly"`).
    pub defect_type: String,
    /// The ground-truth mask file; `None` for normal images (and for defective images of a
    /// layout without masks).
    pub mask_path: Option<PathBuf>,
}

impl TestItem {
    /// Loads the image (`3 × size × size`) and its mask (`1 × size × size`, 0/1; all zeros
    /// when there is no mask file). A mask whose pixel size differs from its image's is an
    /// error naming both files.
    pub fn load(&self, size: usize) -> Result<(Image, Image)> {
        let img = load_rgb(&self.path, size)?;
        let mask = match &self.mask_path {
            None => Image::zeros(1, size, size),
            Some(m) => {
                let di = image_dimensions(&self.path)?;
                let dm = image_dimensions(m)?;
                if di != dm {
                    return Err(Error::Image {
                        path: m.clone(),
                        message: format!(
                            "mask is {}×{} but its image {} is {}×{}",
                            dm.0,
                            dm.1,
                            self.path.display(),
                            di.0,
                            di.1
                        ),
                    });
                }
                load_mask(m, size)?
            }
        };
        Ok((img, mask))
    }
}

/// What every dataset reader offers.
pub trait Category {
    /// The category name (e.g. `"bottle"`, `"candle"`).
    fn name(&self) -> &str;
    /// The folder the category was opened from (used in error messages).
    fn root(&self) -> &Path;
    /// All normal training images, sorted.
    fn train_good(&self) -> Result<Vec<PathBuf>>;
    /// All test items, sorted by defect type then file name.
    fn test_items(&self) -> Result<Vec<TestItem>>;
    /// Chooses `k` shots from the training images with a seeded RNG (reproducible); see
    /// [`choose_shots_from`].
    fn choose_shots(&self, k: usize, seed: u64) -> Result<Vec<PathBuf>> {
        choose_shots_from(&self.train_good()?, k, seed, self.root())
    }
}

/// Chooses `k` distinct files from `candidates` (sorted first) with ChaCha8 seeded by `seed`:
/// the same candidates and seed always give the same files, in the same order. Fewer
/// candidates than `k`, or `k = 0`, is an error naming `context`.
pub fn choose_shots_from(
    candidates: &[PathBuf],
    k: usize,
    seed: u64,
    context: &Path,
) -> Result<Vec<PathBuf>> {
    if k == 0 {
        return Err(Error::Config(
            "the number of shots must be at least 1".into(),
        ));
    }
    if candidates.len() < k {
        return Err(Error::Dataset {
            path: context.to_path_buf(),
            message: format!(
                "{k} shots requested but only {} good training image(s) found",
                candidates.len()
            ),
        });
    }
    let mut sorted = candidates.to_vec();
    sorted.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok(sample(&mut rng, sorted.len(), k)
        .into_iter()
        .map(|i| sorted[i].clone())
        .collect())
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        if p.is_file() && is_image_file(&p) && !entry.file_name().to_string_lossy().starts_with('.')
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn list_subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        if p.is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn dir_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Finds `<dir>/<stem>_mask.<ext>` or `<dir>/<stem>.<ext>` for the usual image extensions.
fn find_mask(dir: &Path, stem: &str) -> Option<PathBuf> {
    for name in [format!("{stem}_mask"), stem.to_string()] {
        for ext in ["png", "PNG", "bmp", "tif", "tiff", "jpg", "JPG"] {
            let p = dir.join(format!("{name}.{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// One category in MVTec AD layout: `<cat>/train/good/*`, `<cat>/test/<defect>/*`,
/// `<cat>/ground_truth/<defect>/<name>_mask.png`. Also reads VisA's MVTec-like converted
/// layout, whose masks are `<name>.png` (both names are accepted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MvtecCategory {
    /// The category folder.
    pub dir: PathBuf,
    /// The category name (the folder's name).
    pub name: String,
    /// When `true`, a defective test image without a mask gets `mask_path: None` instead of
    /// an error (off by default).
    pub allow_missing_masks: bool,
}

impl MvtecCategory {
    /// Opens a category folder, checking that `train/good` and `test` exist.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Dataset {
                path: dir.to_path_buf(),
                message: "category folder does not exist".into(),
            });
        }
        for sub in ["train/good", "test"] {
            if !dir.join(sub).is_dir() {
                return Err(Error::Dataset {
                    path: dir.to_path_buf(),
                    message: format!("not an MVTec-layout category: missing `{sub}` folder"),
                });
            }
        }
        Ok(MvtecCategory {
            dir: dir.to_path_buf(),
            name: dir_name(dir),
            allow_missing_masks: false,
        })
    }

    /// Lists the categories (sub-folders with `train/good`) of a dataset root, sorted.
    /// A root without any is an error.
    pub fn list(root: &Path) -> Result<Vec<Self>> {
        let cats: Vec<Self> = list_subdirs(root)?
            .into_iter()
            .filter(|d| d.join("train/good").is_dir())
            .map(|d| MvtecCategory {
                name: dir_name(&d),
                dir: d,
                allow_missing_masks: false,
            })
            .collect();
        if cats.is_empty() {
            return Err(Error::Dataset {
                path: root.to_path_buf(),
                message: "no category folder with `train/good` found".into(),
            });
        }
        Ok(cats)
    }
}

impl Category for MvtecCategory {
    fn name(&self) -> &str {
        &self.name
    }
    fn root(&self) -> &Path {
        &self.dir
    }
    fn train_good(&self) -> Result<Vec<PathBuf>> {
        list_images(&self.dir.join("train/good"))
    }
    fn test_items(&self) -> Result<Vec<TestItem>> {
        let mut items = Vec::new();
        let has_ground_truth = self.dir.join("ground_truth").is_dir();
        for d in list_subdirs(&self.dir.join("test"))? {
            let defect = dir_name(&d);
            let good = defect == "good";
            let gt_dir = self.dir.join("ground_truth").join(&defect);
            for path in list_images(&d)? {
                let mask_path = if good {
                    None
                } else {
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    match find_mask(&gt_dir, &stem) {
                        Some(m) => Some(m),
                        // A category without `ground_truth/` is an image-level set.
                        None if self.allow_missing_masks || !has_ground_truth => None,
                        None => {
                            return Err(Error::Dataset {
                                path: path.clone(),
                                message: format!(
                                    "defective test image has no mask {}/{stem}_mask.png",
                                    gt_dir.display()
                                ),
                            })
                        }
                    }
                };
                items.push(TestItem {
                    path,
                    label: !good,
                    defect_type: defect.clone(),
                    mask_path,
                });
            }
        }
        if items.is_empty() {
            return Err(Error::Dataset {
                path: self.dir.join("test"),
                message: "no test images found".into(),
            });
        }
        Ok(items)
    }
}

/// Largest `split_csv/1cls.csv` [`Visa::open_raw`] reads (VisA's is about 1 MB).
pub const MAX_SPLIT_CSV_BYTES: u64 = 64 << 20;

/// `true` when `name` can be used as one file or folder name inside an output folder: not
/// empty, at most 255 bytes, no path separator (`/`, `\`), not `.` or `..` or otherwise
/// starting with a dot, no control character and no `:` (a drive or stream on Windows).
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control())
}

/// `true` when the relative path `rel` (as listed in a dataset file) stays inside the folder
/// it is relative to: not empty, not absolute (no root, no drive prefix), no `..` component.
fn is_inside(rel: &str) -> bool {
    use std::path::Component;
    !rel.is_empty()
        && !rel.starts_with(['/', '\\'])
        && !rel.contains('\0')
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && !rel.split(['/', '\\']).any(|part| part == "..")
}

/// VisA readers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visa {
    root: PathBuf,
    name: String,
    train: Vec<PathBuf>,
    test: Vec<TestItem>,
}

impl Visa {
    /// The raw VisA layout: `<root>/split_csv/1cls.csv` (columns `object,split,label,image,mask`,
    /// paths relative to `<root>`) lists the files of every category. Train rows must be
    /// normal; a test anomaly must have a mask; every listed file must exist. Listed paths
    /// must stay inside `root` (relative, without `..`), and `category` must be usable as a
    /// file name ([`is_safe_name`]); otherwise an [`Error::Dataset`] names the row or the
    /// name. A split file larger than [`MAX_SPLIT_CSV_BYTES`] is refused.
    pub fn open_raw(root: &Path, category: &str) -> Result<Self> {
        let csv = root.join("split_csv").join("1cls.csv");
        if !is_safe_name(category) {
            return Err(Error::Dataset {
                path: csv,
                message: format!(
                    "object name `{}` is not usable as a file name (empty, a path separator, \
                     `..`, a leading dot or a control character)",
                    category.escape_debug()
                ),
            });
        }
        let size = std::fs::metadata(&csv)
            .map_err(|e| Error::io(&csv, e))?
            .len();
        if size > MAX_SPLIT_CSV_BYTES {
            return Err(Error::Dataset {
                path: csv,
                message: format!(
                    "{size} bytes is larger than any split file ({MAX_SPLIT_CSV_BYTES} at most)"
                ),
            });
        }
        let text = std::fs::read_to_string(&csv).map_err(|e| Error::io(&csv, e))?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let header: Vec<String> = match lines.next() {
            Some((_, h)) => h
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect(),
            None => {
                return Err(Error::Dataset {
                    path: csv,
                    message: "empty split file".into(),
                })
            }
        };
        let col = |name: &str| -> Result<usize> {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| Error::Dataset {
                    path: csv.clone(),
                    message: format!("split file lacks the `{name}` column"),
                })
        };
        let (c_obj, c_split, c_label, c_img, c_mask) = (
            col("object")?,
            col("split")?,
            col("label")?,
            col("image")?,
            col("mask")?,
        );
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (ln, line) in lines {
            let f: Vec<&str> = line.split(',').map(|s| s.trim()).collect();
            let get = |c: usize| f.get(c).copied().unwrap_or("");
            if get(c_obj) != category {
                continue;
            }
            let bad_row = |msg: String| Error::Dataset {
                path: csv.clone(),
                message: format!("line {}: {msg}", ln + 1),
            };
            let inside = |column: &str, rel: &str| -> Result<PathBuf> {
                if is_inside(rel) {
                    Ok(root.join(rel))
                } else {
                    Err(bad_row(format!(
                        "{column} path `{}` leaves the dataset folder (absolute, or with `..`)",
                        rel.escape_debug()
                    )))
                }
            };
            let img = inside("image", get(c_img))?;
            if !img.is_file() {
                return Err(bad_row(format!(
                    "listed image {} does not exist",
                    img.display()
                )));
            }
            let anomalous = match get(c_label) {
                "normal" => false,
                "anomaly" => true,
                other => return Err(bad_row(format!("unknown label `{other}`"))),
            };
            match get(c_split) {
                "train" => {
                    if anomalous {
                        return Err(bad_row("anomalous image in the train split".into()));
                    }
                    train.push(img);
                }
                "test" => {
                    let mask_path = if anomalous {
                        let m = get(c_mask);
                        if m.is_empty() {
                            return Err(bad_row(format!("anomaly {} has no mask", img.display())));
                        }
                        let m = inside("mask", m)?;
                        if !m.is_file() {
                            return Err(bad_row(format!(
                                "listed mask {} does not exist",
                                m.display()
                            )));
                        }
                        Some(m)
                    } else {
                        None
                    };
                    test.push(TestItem {
                        path: img,
                        label: anomalous,
                        defect_type: if anomalous { "anomaly" } else { "good" }.into(),
                        mask_path,
                    });
                }
                other => return Err(bad_row(format!("unknown split `{other}`"))),
            }
        }
        if train.is_empty() && test.is_empty() {
            return Err(Error::Dataset {
                path: csv,
                message: format!("no rows for category `{category}`"),
            });
        }
        train.sort();
        test.sort_by(|a, b| (&a.defect_type, &a.path).cmp(&(&b.defect_type, &b.path)));
        Ok(Visa {
            root: root.to_path_buf(),
            name: category.to_string(),
            train,
            test,
        })
    }

    /// VisA converted to the MVTec-like layout (`<cat>/train/good`, `<cat>/test/{good,bad}`,
    /// `<cat>/ground_truth/bad/<name>.png`): read with the MVTec reader.
    pub fn open_converted(category_dir: &Path) -> Result<MvtecCategory> {
        MvtecCategory::open(category_dir)
    }
}

impl Category for Visa {
    fn name(&self) -> &str {
        &self.name
    }
    fn root(&self) -> &Path {
        &self.root
    }
    fn train_good(&self) -> Result<Vec<PathBuf>> {
        if self.train.is_empty() {
            return Err(Error::Dataset {
                path: self.root.join("split_csv/1cls.csv"),
                message: format!("no train images for category `{}`", self.name),
            });
        }
        Ok(self.train.clone())
    }
    fn test_items(&self) -> Result<Vec<TestItem>> {
        Ok(self.test.clone())
    }
}

/// A generic layout: a folder of good images for training, a test folder whose sub-folders
/// are classes (those named in `normal_names`, default `good`, are normal; every other
/// sub-folder is a defect type), and optionally a mask folder `<masks>/<defect>/<name>[_mask].png`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generic {
    /// The category name (used for the foreground rule; default: the good folder's parent
    /// folder name).
    pub name: String,
    /// Folder of normal training images.
    pub good_dir: PathBuf,
    /// Folder whose sub-folders hold the test images.
    pub test_dir: PathBuf,
    /// Optional mask folder. When given, every defective image must have a mask.
    pub mask_dir: Option<PathBuf>,
    /// Names of test sub-folders that hold normal images.
    pub normal_names: Vec<String>,
}

impl Generic {
    /// Opens a generic layout, checking that the folders exist.
    pub fn open(good_dir: &Path, test_dir: &Path, mask_dir: Option<&Path>) -> Result<Self> {
        for d in [Some(good_dir), Some(test_dir), mask_dir]
            .into_iter()
            .flatten()
        {
            if !d.is_dir() {
                return Err(Error::Dataset {
                    path: d.to_path_buf(),
                    message: "folder does not exist".into(),
                });
            }
        }
        let name = good_dir
            .parent()
            .map(dir_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| dir_name(good_dir));
        Ok(Generic {
            name,
            good_dir: good_dir.to_path_buf(),
            test_dir: test_dir.to_path_buf(),
            mask_dir: mask_dir.map(Path::to_path_buf),
            normal_names: vec!["good".into()],
        })
    }
}

impl Category for Generic {
    fn name(&self) -> &str {
        &self.name
    }
    fn root(&self) -> &Path {
        &self.good_dir
    }
    fn train_good(&self) -> Result<Vec<PathBuf>> {
        list_images(&self.good_dir)
    }
    fn test_items(&self) -> Result<Vec<TestItem>> {
        let mut items = Vec::new();
        for d in list_subdirs(&self.test_dir)? {
            let class = dir_name(&d);
            let normal = self.normal_names.iter().any(|n| n == &class);
            for path in list_images(&d)? {
                let mask_path = match (&self.mask_dir, normal) {
                    (Some(md), false) => {
                        let stem = path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let dir = md.join(&class);
                        Some(find_mask(&dir, &stem).ok_or_else(|| Error::Dataset {
                            path: path.clone(),
                            message: format!(
                                "defective test image has no mask in {} (`{stem}_mask.png` or `{stem}.png`)",
                                dir.display()
                            ),
                        })?)
                    }
                    _ => None,
                };
                items.push(TestItem {
                    path,
                    label: !normal,
                    defect_type: if normal { "good".into() } else { class.clone() },
                    mask_path,
                });
            }
        }
        if items.is_empty() {
            return Err(Error::Dataset {
                path: self.test_dir.clone(),
                message: "no test images found in its sub-folders".into(),
            });
        }
        Ok(items)
    }
}
