//! Data-side tests on small generated trees: readers for every layout, bad input, the
//! training-set builder's determinism and invariants.

use std::path::{Path, PathBuf};

use dfd::data::datasets::{choose_shots_from, Category, Generic, MvtecCategory, Visa};
use dfd::data::synthetic::{generate_category, SyntheticCounts, DEFECT_TYPES};
use dfd::data::trainset::{build_training_set, make_pseudo_sample, sample_rng, TrainSetConfig};
use dfd::data::{ForegroundRule, TextureSource};
use dfd::image::{load_mask, load_rgb, Image};
use dfd::Error;

/// A fresh, empty temporary folder, unique per test.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dfd-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small_counts() -> SyntheticCounts {
    SyntheticCounts {
        train_good: 4,
        test_good: 2,
        test_per_defect: 2,
    }
}

fn write_png(path: &Path, w: u32, h: u32, v: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(w, h, image::Luma([v]))
        .save(path)
        .unwrap();
}

#[test]
fn synthetic_is_deterministic_and_readable_as_mvtec() {
    let root = temp_dir("synth");
    let a = generate_category(&root.join("a"), "texture_synth", 64, small_counts(), 3).unwrap();
    let b = generate_category(&root.join("b"), "texture_synth", 64, small_counts(), 3).unwrap();
    let obj = generate_category(&root.join("a"), "object_synth", 64, small_counts(), 3).unwrap();
    for rel in [
        "train/good/000.png",
        "test/crack/001.png",
        "ground_truth/spot/000_mask.png",
    ] {
        assert_eq!(
            std::fs::read(a.join(rel)).unwrap(),
            std::fs::read(b.join(rel)).unwrap(),
            "{rel}"
        );
    }
    for dir in [&a, &obj] {
        let cat = MvtecCategory::open(dir).unwrap();
        assert_eq!(cat.train_good().unwrap().len(), 4);
        let items = cat.test_items().unwrap();
        assert_eq!(items.len(), 2 + 2 * DEFECT_TYPES.len());
        for it in &items {
            assert_eq!(it.label, it.defect_type != "good");
            assert_eq!(it.mask_path.is_some(), it.label);
            let (img, mask) = it.load(32).unwrap();
            assert_eq!((img.channels, img.height, img.width), (3, 32, 32));
            assert!(mask.data.iter().all(|&v| v == 0.0 || v == 1.0));
            // Planted defects are visible in the ground truth.
            assert_eq!(mask.data.contains(&1.0), it.label, "{}", it.path.display());
        }
    }
    // Categories of a root are listed.
    let cats = MvtecCategory::list(&root.join("a")).unwrap();
    assert_eq!(
        cats.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["object_synth", "texture_synth"]
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn shots_are_seeded_reported_and_checked() {
    let files: Vec<PathBuf> = (0..10)
        .map(|i| PathBuf::from(format!("g/{i:03}.png")))
        .collect();
    let a = choose_shots_from(&files, 3, 7, Path::new("g")).unwrap();
    let b = choose_shots_from(&files, 3, 7, Path::new("g")).unwrap();
    let mut shuffled = files.clone();
    shuffled.reverse();
    let c = choose_shots_from(&shuffled, 3, 7, Path::new("g")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c, "order of the candidates must not matter");
    assert_eq!(a.len(), 3);
    assert!(a[0] != a[1] && a[1] != a[2] && a[0] != a[2]);
    let different =
        (0..20u64).any(|s| choose_shots_from(&files, 3, s, Path::new("g")).unwrap() != a);
    assert!(different);
    let e = choose_shots_from(&files, 11, 0, Path::new("g"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("11 shots requested but only 10"), "{e}");
    assert!(choose_shots_from(&files, 0, 0, Path::new("g")).is_err());
}

#[test]
fn visa_raw_and_converted_layouts() {
    let root = temp_dir("visa");
    // Raw layout: masks hold a small region index (not 255), as VisA's do.
    for i in 0..3 {
        write_png(
            &root.join(format!("candle/Data/Images/Normal/{i:04}.JPG.png")),
            20,
            16,
            120,
        );
    }
    write_png(&root.join("candle/Data/Images/Anomaly/000.png"), 20, 16, 90);
    let mut m = image::GrayImage::new(20, 16);
    for y in 4..10 {
        for x in 5..12 {
            m.put_pixel(x, y, image::Luma([1]));
        }
    }
    std::fs::create_dir_all(root.join("candle/Data/Masks/Anomaly")).unwrap();
    m.save(root.join("candle/Data/Masks/Anomaly/000.png"))
        .unwrap();
    std::fs::create_dir_all(root.join("split_csv")).unwrap();
    let csv = "object,split,label,image,mask\n\
        candle,train,normal,candle/Data/Images/Normal/0000.JPG.png,\n\
        candle,train,normal,candle/Data/Images/Normal/0001.JPG.png,\n\
        candle,test,normal,candle/Data/Images/Normal/0002.JPG.png,\n\
        candle,test,anomaly,candle/Data/Images/Anomaly/000.png,candle/Data/Masks/Anomaly/000.png\n\
        pcb1,train,normal,pcb1/x.png,\n";
    std::fs::write(root.join("split_csv/1cls.csv"), csv).unwrap();
    let v = Visa::open_raw(&root, "candle").unwrap();
    assert_eq!(v.train_good().unwrap().len(), 2);
    let items = v.test_items().unwrap();
    assert_eq!(items.len(), 2);
    let anomaly = items.iter().find(|i| i.label).unwrap();
    assert_eq!(anomaly.defect_type, "anomaly");
    let (_, mask) = anomaly.load(16).unwrap();
    assert!(
        mask.data.contains(&1.0),
        "index-coded VisA mask must not vanish"
    );
    assert_eq!(v.choose_shots(2, 1).unwrap().len(), 2);
    // A listed file that does not exist is an error naming it.
    std::fs::write(
        root.join("split_csv/1cls.csv"),
        format!("{csv}candle,test,normal,candle/Data/Images/Normal/9999.png,\n"),
    )
    .unwrap();
    let e = Visa::open_raw(&root, "candle").unwrap_err().to_string();
    assert!(
        e.contains("9999.png") && e.contains("does not exist"),
        "{e}"
    );
    assert!(Visa::open_raw(&root, "nothing").is_err());

    // Converted layout: masks named like their image, without `_mask`.
    let conv = root.join("converted/candle");
    write_png(&conv.join("train/good/000.png"), 8, 8, 10);
    write_png(&conv.join("test/good/001.png"), 8, 8, 10);
    write_png(&conv.join("test/bad/002.png"), 8, 8, 10);
    write_png(&conv.join("ground_truth/bad/002.png"), 8, 8, 255);
    let c = Visa::open_converted(&conv).unwrap();
    let items = c.test_items().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].defect_type, "bad");
    assert_eq!(
        items[0].mask_path.as_deref(),
        Some(conv.join("ground_truth/bad/002.png").as_path())
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn generic_layout_with_and_without_masks() {
    let root = temp_dir("generic");
    for i in 0..3 {
        write_png(&root.join(format!("part/ok/{i}.png")), 10, 10, 100);
    }
    write_png(&root.join("part/test/good/a.png"), 10, 10, 100);
    write_png(&root.join("part/test/dent/b.png"), 10, 10, 50);
    let g = Generic::open(&root.join("part/ok"), &root.join("part/test"), None).unwrap();
    assert_eq!(g.name, "part");
    let items = g.test_items().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.mask_path.is_none()));
    assert_eq!(items.iter().filter(|i| i.label).count(), 1);
    // With a mask folder every defective image needs its mask.
    std::fs::create_dir_all(root.join("part/masks")).unwrap();
    let g = Generic::open(
        &root.join("part/ok"),
        &root.join("part/test"),
        Some(&root.join("part/masks")),
    )
    .unwrap();
    let e = g.test_items().unwrap_err().to_string();
    assert!(e.contains("b.png") && e.contains("no mask"), "{e}");
    write_png(&root.join("part/masks/dent/b_mask.png"), 10, 10, 255);
    assert!(g
        .test_items()
        .unwrap()
        .iter()
        .any(|i| i.mask_path.is_some()));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_input_gets_clear_errors() {
    let root = temp_dir("bad");
    // A category folder missing train/good.
    std::fs::create_dir_all(root.join("cat/test/good")).unwrap();
    let e = MvtecCategory::open(&root.join("cat"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("train/good"), "{e}");
    // Without `ground_truth/` the category is an image-level set: no masks, no error.
    std::fs::create_dir_all(root.join("cat/train/good")).unwrap();
    write_png(&root.join("cat/train/good/0.png"), 8, 8, 1);
    write_png(&root.join("cat/test/scratch/5.png"), 8, 8, 1);
    let cat = MvtecCategory::open(&root.join("cat")).unwrap();
    let items = cat.test_items().unwrap();
    assert_eq!((items.len(), items[0].mask_path.is_none()), (1, true));
    // With `ground_truth/`, a defective image without its mask is an error naming it.
    std::fs::create_dir_all(root.join("cat/ground_truth/scratch")).unwrap();
    let e = cat.test_items().unwrap_err().to_string();
    assert!(e.contains("5.png") && e.contains("no mask"), "{e}");
    let lenient = MvtecCategory {
        allow_missing_masks: true,
        ..cat.clone()
    };
    assert_eq!(lenient.test_items().unwrap().len(), 1);
    // Fewer good images than shots.
    let e = cat.choose_shots(2, 0).unwrap_err().to_string();
    assert!(e.contains("2 shots requested but only 1"), "{e}");
    // A mask whose size differs from its image.
    write_png(&root.join("cat/ground_truth/scratch/5_mask.png"), 9, 8, 255);
    let items = cat.test_items().unwrap();
    let e = items[0].load(8).unwrap_err().to_string();
    assert!(
        e.contains("5_mask.png") && e.contains("9×8") && e.contains("8×8"),
        "{e}"
    );
    // Unreadable, truncated and non-image files.
    let garbage = root.join("garbage.png");
    std::fs::write(&garbage, b"definitely not a png").unwrap();
    let e = load_rgb(&garbage, 8).unwrap_err();
    assert!(matches!(e, Error::Image { .. }), "{e}");
    assert!(e.to_string().contains("garbage.png"));
    let good = root.join("cat/train/good/0.png");
    let bytes = std::fs::read(&good).unwrap();
    let truncated = root.join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_rgb(&truncated, 8).unwrap_err().to_string();
    assert!(e.contains("truncated.png"), "{e}");
    let e = load_rgb(&root.join("missing.png"), 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.png"), "{e}");
    // An empty texture folder.
    std::fs::create_dir_all(root.join("textures/empty")).unwrap();
    let e = TextureSource::from_folder(&root.join("textures"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no image file"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn loaders_handle_16_bit_grey_and_colour() {
    let root = temp_dir("load");
    let p16 = root.join("g16.png");
    let mut g = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::new(4, 4);
    for (i, px) in g.pixels_mut().enumerate() {
        *px = image::Luma([(i as u16) * 4000]);
    }
    g.save(&p16).unwrap();
    let img = load_rgb(&p16, 4).unwrap();
    assert_eq!(img.channels, 3);
    assert!((img.get(0, 0, 1) - 4000.0 / 65535.0).abs() < 1e-6);
    assert_eq!(img.get(0, 2, 2), img.get(2, 2, 2));
    let prgb = root.join("c.bmp");
    image::RgbImage::from_pixel(6, 3, image::Rgb([255, 0, 128]))
        .save(&prgb)
        .unwrap();
    let img = load_rgb(&prgb, 5).unwrap();
    assert!((img.get(0, 1, 1) - 1.0).abs() < 1e-6 && img.get(1, 1, 1) == 0.0);
    assert!((img.get(2, 4, 4) - 128.0 / 255.0).abs() < 1e-6);
    let pm = root.join("m.png");
    write_png(&pm, 6, 6, 255);
    let m = load_mask(&pm, 3).unwrap();
    assert!(m.data.iter().all(|&v| v == 1.0));
    std::fs::remove_dir_all(&root).unwrap();
}

fn shots_from_synthetic(tag: &str, name: &str, size: usize, k: usize) -> (PathBuf, Vec<Image>) {
    let root = temp_dir(tag);
    let dir = generate_category(&root, name, 64, small_counts(), 11).unwrap();
    let cat = MvtecCategory::open(&dir).unwrap();
    let shots = cat
        .choose_shots(k, 0)
        .unwrap()
        .iter()
        .map(|p| load_rgb(p, size).unwrap())
        .collect();
    (root, shots)
}

#[test]
fn training_set_is_deterministic_and_well_formed() {
    let (root, shots) = shots_from_synthetic("train", "object_synth", 32, 2);
    let cfg = TrainSetConfig {
        samples_per_shot: 12,
        ..TrainSetConfig::default()
    };
    let tex = TextureSource::procedural();
    let build = |seed| {
        build_training_set(
            &shots,
            "object_synth",
            &cfg,
            &tex,
            seed,
            &dfd::progress::Progress::silent(),
        )
        .unwrap()
    };
    let (a, b, c) = (build(5), build(5), build(6));
    assert_eq!(a.len(), 24);
    assert_eq!(a, b, "same seed must give a bit-identical training set");
    assert_ne!(a, c);
    let mut anomalies = 0;
    for s in &a {
        for img in [
            &s.normal_low,
            &s.normal_high,
            &s.anomalous_low,
            &s.anomalous_high,
        ] {
            assert_eq!((img.channels, img.height, img.width), (3, 32, 32));
            assert!(img.data.iter().all(|v| v.is_finite()));
        }
        assert_eq!((s.mask.channels, s.mask.height, s.mask.width), (1, 32, 32));
        assert!(s.mask.data.iter().all(|&v| v == 0.0 || v == 1.0));
        let any = s.mask.data.contains(&1.0);
        assert_eq!(s.label, if any { 1.0 } else { 0.0 });
        if s.label == 0.0 {
            assert_eq!(s.normal_low, s.anomalous_low);
            assert_eq!(s.normal_high, s.anomalous_high);
        }
        anomalies += any as usize;
    }
    // p_anomaly = 0.7 of 24 samples (minus empty Perlin masks): clearly some of each.
    assert!((6..=23).contains(&anomalies), "{anomalies} anomalies");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn masks_stay_inside_the_foreground_and_blend_correctly() {
    let (root, shots) = shots_from_synthetic("fg", "object_synth", 48, 1);
    let cfg = TrainSetConfig {
        p_anomaly: 1.0,
        foreground: ForegroundRule::Bright,
        ..TrainSetConfig::default()
    };
    let tex = TextureSource::procedural();
    let mut nonempty = 0;
    for j in 0..20 {
        let s = make_pseudo_sample(
            &shots[0],
            ForegroundRule::Bright,
            &cfg,
            &tex,
            &mut sample_rng(1, j),
        )
        .unwrap();
        let fg = ForegroundRule::Bright.mask(&s.normal);
        let n = 48 * 48;
        for i in 0..n {
            assert!(
                s.mask.data[i] <= fg.data[i],
                "mask pixel {i} outside the foreground"
            );
            if s.mask.data[i] == 0.0 {
                for c in 0..3 {
                    assert_eq!(s.anomalous.data[c * n + i], s.normal.data[c * n + i]);
                }
            }
        }
        assert!(s.anomalous.data.iter().all(|v| (0.0..=1.0).contains(v)));
        nonempty += (s.label == 1.0) as usize;
    }
    assert!(
        nonempty >= 5,
        "only {nonempty} of 20 forced anomalies have a mask"
    );
    // Normal draws keep the image and give an empty mask.
    let cfg0 = TrainSetConfig {
        p_anomaly: 0.0,
        ..cfg
    };
    let s = make_pseudo_sample(
        &shots[0],
        ForegroundRule::All,
        &cfg0,
        &tex,
        &mut sample_rng(1, 0),
    )
    .unwrap();
    assert_eq!(s.label, 0.0);
    assert_eq!(s.normal, s.anomalous);
    assert!(s.mask.data.iter().all(|&v| v == 0.0));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn builder_rejects_bad_configuration_and_shots() {
    let tex = TextureSource::procedural();
    let cfg = TrainSetConfig::default();
    assert!(
        build_training_set(&[], "x", &cfg, &tex, 0, &dfd::progress::Progress::silent()).is_err()
    );
    let shots = vec![Image::zeros(3, 16, 16), Image::zeros(3, 16, 8)];
    let e = build_training_set(
        &shots,
        "x",
        &cfg,
        &tex,
        0,
        &dfd::progress::Progress::silent(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("shot 1"), "{e}");
    let bad = TrainSetConfig {
        p_anomaly: 1.5,
        ..cfg
    };
    let e = build_training_set(
        &shots[..1],
        "x",
        &bad,
        &tex,
        0,
        &dfd::progress::Progress::silent(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("p_anomaly"), "{e}");
}

#[test]
fn texture_folder_is_used() {
    let root = temp_dir("texfolder");
    let sub = root.join("images/banded");
    std::fs::create_dir_all(&sub).unwrap();
    image::RgbImage::from_pixel(40, 30, image::Rgb([10, 200, 30]))
        .save(sub.join("banded_0001.jpg"))
        .unwrap();
    let tex = TextureSource::from_folder(&root.join("images")).unwrap();
    assert!(tex.notice().is_none());
    let t = tex.sample(16, &mut sample_rng(0, 0)).unwrap();
    assert_eq!((t.channels, t.height, t.width), (3, 16, 16));
    assert!((t.get(1, 8, 8) - 200.0 / 255.0).abs() < 0.03);
    std::fs::remove_dir_all(&root).unwrap();
}
