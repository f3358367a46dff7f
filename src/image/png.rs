//! Writing images as 8-bit PNG files.

use std::path::Path;

use super::{to_u8, Image};
use crate::error::{Error, Result};

/// Writes a 1- or 3-channel image as an 8-bit PNG (values clamped to `[0, 1]`).
pub fn save_png(img: &Image, path: &Path) -> Result<()> {
    let n = img.plane_len();
    let (w, h) = (img.width as u32, img.height as u32);
    let res = match img.channels {
        1 => {
            let buf: Vec<u8> = img.data.iter().map(|&v| to_u8(v)).collect();
            image::GrayImage::from_raw(w, h, buf).map(|b| b.save(path))
        }
        3 => {
            let mut buf = vec![0u8; 3 * n];
            for i in 0..n {
                for c in 0..3 {
                    buf[3 * i + c] = to_u8(img.data[c * n + i]);
                }
            }
            image::RgbImage::from_raw(w, h, buf).map(|b| b.save(path))
        }
        c => {
            return Err(Error::Shape(format!(
                "save_png {}: {c} channels (1 or 3 supported)",
                path.display()
            )))
        }
    };
    match res {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(Error::Image {
            path: path.to_path_buf(),
            message: format!("cannot write PNG: {e}"),
        }),
        None => Err(Error::Shape(format!(
            "save_png {}: data length does not match the shape",
            path.display()
        ))),
    }
}
