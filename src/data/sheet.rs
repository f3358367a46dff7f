//! A PNG sheet of pseudo-anomalies, so a person can look at what training sees: one row per
//! sample, columns *image* (the rotated normal image), *mask*, *result* (the sample).

use std::path::Path;

use crate::data::trainset::PseudoSample;
use crate::error::{Error, Result};
use crate::image::{save_png, Image};

/// Composes the sheet image (3 × rows·(S+gap) × 3·(S+gap), white gaps of `gap` pixels).
/// Samples must share one size.
pub fn compose_sheet(samples: &[PseudoSample], gap: usize) -> Result<Image> {
    let first = samples
        .first()
        .ok_or_else(|| Error::Config("no samples to put on the sheet".into()))?;
    let (h, w) = (first.normal.height, first.normal.width);
    let (cell_h, cell_w) = (h + gap, w + gap);
    let mut sheet = Image::filled(3, samples.len() * cell_h + gap, 3 * cell_w + gap, 1.0);
    for (r, s) in samples.iter().enumerate() {
        if s.normal.height != h || s.normal.width != w || !s.anomalous.same_shape(&s.normal) {
            return Err(Error::Shape(format!(
                "sample {r} has another size than sample 0"
            )));
        }
        for (col, img) in [&s.normal, &s.mask, &s.anomalous].into_iter().enumerate() {
            let (oy, ox) = (gap + r * cell_h, gap + col * cell_w);
            for c in 0..3 {
                let src_c = if img.channels == 1 { 0 } else { c };
                for y in 0..h {
                    for x in 0..w {
                        sheet.set(c, oy + y, ox + x, img.get(src_c, y, x));
                    }
                }
            }
        }
    }
    Ok(sheet)
}

/// Writes [`compose_sheet`] (gap 4) as a PNG.
pub fn write_sheet(samples: &[PseudoSample], path: &Path) -> Result<()> {
    save_png(&compose_sheet(samples, 4)?, path)
}
