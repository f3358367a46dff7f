//! Decoding image files and buffers within limits, and loading them as RGB images or masks
//! at a given size (design §1.1). Resizing happens in the decoded integer domain, exactly as
//! `cv2.resize(..., INTER_LINEAR)` does on the decoded array (fixed-point for 8-bit, float
//! for 16-bit, see `resize.rs`), then the values are scaled to `[0, 1]`.

use std::path::Path;

use super::resize::{resize_f32, resize_u16, resize_u8};
use super::Image;
use crate::error::{Error, Result};

/// Decoded pixel data before resizing.
enum Decoded {
    /// 8-bit planes.
    U8(Vec<Vec<u8>>),
    /// 16-bit planes.
    U16(Vec<Vec<u16>>),
    /// Float planes (already in `[0, 1]` nominally).
    F32(Vec<Vec<f32>>),
}

/// Largest width or height of an image the library decodes (a 16 k × 16 k photo is larger
/// than any industrial camera frame; a larger header is a decompression bomb).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Largest allocation the decoder may make for one image (an RGBA 16-bit 8 k × 8 k image).
pub const MAX_IMAGE_ALLOC: u64 = 512 << 20;

fn limited<R: std::io::BufRead + std::io::Seek>(
    mut reader: image::ImageReader<R>,
    origin: &Path,
) -> Result<(image::DynamicImage, usize, usize)> {
    let image_err = |message: String| Error::Image {
        path: origin.to_path_buf(),
        message,
    };
    if reader.format().is_none() {
        return Err(image_err(
            "not a recognised image format (PNG, JPEG, BMP or TIFF expected)".into(),
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => image_err(format!(
            "refused before decoding: {l} (at most {MAX_IMAGE_SIDE} pixels a side and \
             {MAX_IMAGE_ALLOC} bytes)"
        )),
        e => image_err(format!("cannot decode: {e}")),
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(image_err("image has zero size".into()));
    }
    Ok((img, h, w))
}

/// Refuses anything but a regular file, before it is opened: opening a FIFO would wait for
/// a writer, and a device may never end.
fn regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return Ok(());
    }
    Err(Error::Image {
        path: path.to_path_buf(),
        message: if meta.is_dir() {
            "is a folder, not an image file".into()
        } else {
            "is not a regular file (a device, a pipe or a socket), not an image file".into()
        },
    })
}

fn decode(path: &Path) -> Result<(image::DynamicImage, usize, usize)> {
    regular_file(path)?;
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    limited(reader, path)
}

/// Decodes an image held in memory (PNG, JPEG, BMP or TIFF) within the same limits as files
/// ([`MAX_IMAGE_SIDE`], [`MAX_IMAGE_ALLOC`]: a header declaring a huge image is refused
/// before anything is allocated); `origin` names it in errors.
pub fn decode_bytes(bytes: &[u8], origin: &Path) -> Result<image::DynamicImage> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(origin, e))?;
    Ok(limited(reader, origin)?.0)
}

fn split_planes<T: Copy + Default>(interleaved: &[T], channels: usize, n: usize) -> Vec<Vec<T>> {
    let mut planes = vec![vec![T::default(); n]; channels];
    for (i, px) in interleaved.chunks_exact(channels).enumerate() {
        for c in 0..channels {
            planes[c][i] = px[c];
        }
    }
    planes
}

fn planes_of(img: &image::DynamicImage) -> Decoded {
    use image::DynamicImage as D;
    let n = img.width() as usize * img.height() as usize;
    match img {
        D::ImageLuma8(_) | D::ImageLumaA8(_) | D::ImageRgb8(_) | D::ImageRgba8(_) => {
            Decoded::U8(split_planes(img.to_rgb8().as_raw(), 3, n))
        }
        D::ImageLuma16(_) | D::ImageLumaA16(_) | D::ImageRgb16(_) | D::ImageRgba16(_) => {
            Decoded::U16(split_planes(img.to_rgb16().as_raw(), 3, n))
        }
        _ => Decoded::F32(split_planes(img.to_rgb32f().as_raw(), 3, n)),
    }
}

/// A decoded image (from the `image` crate, a camera buffer, …) as RGB in `[0, 1]` at
/// `height × width`, resized exactly as [`load_rgb_hw`] resizes a file's pixels (OpenCV
/// `INTER_LINEAR` in the decoded integer domain): a file and its decoded buffer give the
/// same image. Grey is replicated to three channels; alpha is dropped.
pub fn rgb_from_dynamic(img: &image::DynamicImage, height: usize, width: usize) -> Result<Image> {
    let (h, w) = (img.height() as usize, img.width() as usize);
    if height == 0 || width == 0 || h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "cannot resize a {w}×{h} image to {width}×{height}"
        )));
    }
    Ok(resize_planes(&planes_of(img), h, w, height, width))
}

fn resize_planes(planes: &Decoded, h: usize, w: usize, height: usize, width: usize) -> Image {
    let mut out = Image::zeros(3, height, width);
    for c in 0..3 {
        let dst = out.plane_mut(c);
        match planes {
            Decoded::U8(p) => {
                let r = resize_u8(&p[c], h, w, height, width);
                for (d, s) in dst.iter_mut().zip(r) {
                    *d = s as f32 / 255.0;
                }
            }
            Decoded::U16(p) => {
                let r = resize_u16(&p[c], h, w, height, width);
                for (d, s) in dst.iter_mut().zip(r) {
                    *d = s as f32 / 65535.0;
                }
            }
            Decoded::F32(p) => {
                let r = resize_f32(&p[c], h, w, height, width);
                for (d, s) in dst.iter_mut().zip(r) {
                    *d = s.clamp(0.0, 1.0);
                }
            }
        }
    }
    out
}

/// Reads an image file's pixels (PNG, JPEG, BMP or TIFF), refusing undecodable files with
/// an [`Error::Image`] naming the file.
pub fn decode_file(path: &Path) -> Result<image::DynamicImage> {
    Ok(decode(path)?.0)
}

/// Loads an image as RGB, resizes it to `size × size` with OpenCV `INTER_LINEAR` semantics
/// (in the decoded integer domain, like `cv2.resize` on the decoded array) and scales it to
/// `[0, 1]`. Grey images are replicated to three channels; alpha is dropped.
pub fn load_rgb(path: &Path, size: usize) -> Result<Image> {
    load_rgb_hw(path, size, size)
}

/// Like [`load_rgb`] with a separate output height and width.
pub fn load_rgb_hw(path: &Path, height: usize, width: usize) -> Result<Image> {
    if height == 0 || width == 0 {
        return Err(Error::Config(format!(
            "cannot resize {} to {height}×{width}",
            path.display()
        )));
    }
    let (img, h, w) = decode(path)?;
    Ok(resize_planes(&planes_of(&img), h, w, height, width))
}

/// Loads a ground-truth mask: grey, resized like [`load_rgb`] (8-bit fixed-point
/// `INTER_LINEAR`), scaled to `[0, 1]`, then `> 0.5` → 1, else 0. Returns `1 × size × size`.
///
/// A mask whose largest value is below 128 (e.g. VisA's raw masks, which store a small
/// region index rather than 255) could never pass `> 0.5` after scaling; such masks are read
/// as "non-zero = defect" before resizing, so that an anomalous image never silently gets an
/// empty mask. An all-zero mask stays all zero.
pub fn load_mask(path: &Path, size: usize) -> Result<Image> {
    load_mask_hw(path, size, size)
}

/// Like [`load_mask`] with a separate output height and width.
pub fn load_mask_hw(path: &Path, height: usize, width: usize) -> Result<Image> {
    if height == 0 || width == 0 {
        return Err(Error::Config(format!(
            "cannot resize {} to {height}×{width}",
            path.display()
        )));
    }
    let (img, h, w) = decode(path)?;
    let mut grey: Vec<u8> = match img.color().bytes_per_pixel() / img.color().channel_count() {
        1 => img.to_luma8().into_raw(),
        _ => img
            .to_luma16()
            .into_raw()
            .into_iter()
            .map(|v| ((v as u32 + 128) / 257) as u8)
            .collect(),
    };
    let max = grey.iter().copied().max().unwrap_or(0);
    if max > 0 && max < 128 {
        for v in grey.iter_mut() {
            if *v != 0 {
                *v = 255;
            }
        }
    }
    let r = resize_u8(&grey, h, w, height, width);
    let data = r
        .into_iter()
        .map(|v| if v as f32 / 255.0 > 0.5 { 1.0 } else { 0.0 })
        .collect();
    Image::from_data(1, height, width, data)
}

/// Reads only the pixel size (width, height) of an image file.
pub fn image_dimensions(path: &Path) -> Result<(usize, usize)> {
    regular_file(path)?;
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let (w, h) = reader.into_dimensions().map_err(|e| Error::Image {
        path: path.to_path_buf(),
        message: format!("cannot read the image header: {e}"),
    })?;
    Ok((w as usize, h as usize))
}
