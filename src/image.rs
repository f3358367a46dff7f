//! CPU image operations with OpenCV's exact semantics (design §1.1, §1.2).
//!
//! Images are planar `CHW` `f32` ([`Image`]), the layout the GPU code uploads. Loading goes
//! through the `image` crate (PNG, JPEG, BMP, TIFF; 8- or 16-bit; grey or colour) and resizes
//! in the decoded integer domain exactly as `cv2.resize(..., INTER_LINEAR)` does on such data
//! (fixed-point for 8-bit, float for 16-bit), then scales to `[0, 1]`. The frequency split uses
//! exact ports of OpenCV's `pyrDown` / `pyrUp` arithmetic (including their border rules), so
//! that `tests/fixtures/opencv_image_ops.safetensors` is matched to float rounding.
//!
//! Unlike the reference code we decode to RGB (the reference feeds BGR to an RGB network).

use std::path::Path;

use crate::error::{Error, Result};

/// ImageNet channel means used by [`normalize_imagenet`].
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations used by [`normalize_imagenet`].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A planar (`channels × height × width`, row-major per channel) `f32` image.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Number of channels (1 for masks and grey images, 3 for RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// `channels * height * width` values, channel planes one after the other.
    pub data: Vec<f32>,
}

impl Image {
    /// An image filled with zeros.
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Image {
            channels,
            height,
            width,
            data: vec![0.0; channels * height * width],
        }
    }

    /// An image filled with `value`.
    pub fn filled(channels: usize, height: usize, width: usize, value: f32) -> Self {
        Image {
            channels,
            height,
            width,
            data: vec![value; channels * height * width],
        }
    }

    /// Wraps planar data, checking that its length matches the shape.
    pub fn from_data(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != channels * height * width {
            return Err(Error::Shape(format!(
                "image data has {} values, expected {channels}×{height}×{width} = {}",
                data.len(),
                channels * height * width
            )));
        }
        Ok(Image {
            channels,
            height,
            width,
            data,
        })
    }

    /// Number of pixels in one channel plane.
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    /// The plane of channel `c`.
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.plane_len();
        &self.data[c * n..(c + 1) * n]
    }

    /// The plane of channel `c`, mutable.
    pub fn plane_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.plane_len();
        &mut self.data[c * n..(c + 1) * n]
    }

    /// The value at channel `c`, row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    /// Sets the value at channel `c`, row `y`, column `x`.
    pub fn set(&mut self, c: usize, y: usize, x: usize, v: f32) {
        self.data[(c * self.height + y) * self.width + x] = v;
    }

    /// `true` when both images have the same channel count, height and width.
    pub fn same_shape(&self, other: &Image) -> bool {
        self.channels == other.channels && self.height == other.height && self.width == other.width
    }
}

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

/// `INTER_LINEAR` tap positions and fractional weights along one axis, as OpenCV computes
/// them (`fx` in single precision from a double product). `clamp` applies the horizontal
/// clamping rule (the vertical axis instead clamps row indices when fetching).
fn linear_taps(src: usize, dst: usize, clamp: bool) -> Vec<(isize, f32)> {
    let inv_scale = dst as f64 / src as f64;
    let scale = 1.0 / inv_scale;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as isize;
            let mut fr = f - s as f32;
            if clamp {
                if s < 0 {
                    fr = 0.0;
                    s = 0;
                }
                if s >= src as isize - 1 {
                    fr = 0.0;
                    s = src as isize - 1;
                }
            }
            (s, fr)
        })
        .collect()
}

fn clamp_idx(i: isize, n: usize) -> usize {
    i.clamp(0, n as isize - 1) as usize
}

fn is_area_fast_2x(sh: usize, sw: usize, dh: usize, dw: usize) -> bool {
    // OpenCV switches INTER_LINEAR to INTER_AREA for an exact 2× reduction on both axes.
    let sx = 1.0 / (dw as f64 / sw as f64);
    let sy = 1.0 / (dh as f64 / sh as f64);
    (sx - 2.0).abs() < f64::EPSILON && (sy - 2.0).abs() < f64::EPSILON
}

/// Resizes one 8-bit plane with `cv2.resize(..., INTER_LINEAR)` arithmetic (11-bit fixed-point
/// coefficients, OpenCV's vectorised rounding; exact 2× reductions use `INTER_AREA` as OpenCV
/// itself does).
pub fn resize_u8(src: &[u8], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<u8> {
    if sh == dh && sw == dw {
        return src.to_vec();
    }
    if is_area_fast_2x(sh, sw, dh, dw) {
        let mut out = vec![0u8; dh * dw];
        for y in 0..dh {
            for x in 0..dw {
                let s = src[2 * y * sw + 2 * x] as u32
                    + src[2 * y * sw + 2 * x + 1] as u32
                    + src[(2 * y + 1) * sw + 2 * x] as u32
                    + src[(2 * y + 1) * sw + 2 * x + 1] as u32;
                out[y * dw + x] = ((s + 2) >> 2) as u8;
            }
        }
        return out;
    }
    const SCALE: f32 = 2048.0;
    let xt: Vec<(usize, i32, i32)> = linear_taps(sw, dw, true)
        .into_iter()
        .map(|(s, f)| {
            let a0 = ((1.0 - f) * SCALE).round_ties_even() as i32;
            let a1 = (f * SCALE).round_ties_even() as i32;
            (s as usize, a0, a1)
        })
        .collect();
    // Horizontal pass for every source row.
    let hrow = |y: usize| -> Vec<i32> {
        let row = &src[y * sw..(y + 1) * sw];
        xt.iter()
            .map(|&(s, a0, a1)| {
                let s1 = if s + 1 < sw { row[s + 1] as i32 } else { 0 };
                row[s] as i32 * a0 + s1 * a1
            })
            .collect()
    };
    let hrows: Vec<Vec<i32>> = (0..sh).map(hrow).collect();
    let mut out = vec![0u8; dh * dw];
    for (dy, (sy, fy)) in linear_taps(sh, dh, false).into_iter().enumerate() {
        let b0 = ((1.0 - fy) * SCALE).round_ties_even() as i32;
        let b1 = (fy * SCALE).round_ties_even() as i32;
        let r0 = &hrows[clamp_idx(sy, sh)];
        let r1 = &hrows[clamp_idx(sy + 1, sh)];
        for x in 0..dw {
            // OpenCV's SIMD path: ((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16), then (v + 2) >> 2.
            let v = (((r0[x] >> 4) * b0) >> 16) + (((r1[x] >> 4) * b1) >> 16);
            out[dy * dw + x] = ((v + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    out
}

/// Resizes one 16-bit plane with `cv2.resize(..., INTER_LINEAR)` arithmetic (float
/// coefficients, round-half-even back to 16 bits).
pub fn resize_u16(src: &[u16], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<u16> {
    let f: Vec<f32> = src.iter().map(|&v| v as f32).collect();
    resize_f32(&f, sh, sw, dh, dw)
        .into_iter()
        .map(|v| v.round_ties_even().clamp(0.0, 65535.0) as u16)
        .collect()
}

/// Resizes one `f32` plane with `cv2.resize(..., INTER_LINEAR)` float arithmetic.
pub fn resize_f32(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<f32> {
    if sh == dh && sw == dw {
        return src.to_vec();
    }
    if is_area_fast_2x(sh, sw, dh, dw) {
        let mut out = vec![0f32; dh * dw];
        for y in 0..dh {
            for x in 0..dw {
                let s = src[2 * y * sw + 2 * x]
                    + src[2 * y * sw + 2 * x + 1]
                    + src[(2 * y + 1) * sw + 2 * x]
                    + src[(2 * y + 1) * sw + 2 * x + 1];
                out[y * dw + x] = s * 0.25;
            }
        }
        return out;
    }
    let xt = linear_taps(sw, dw, true);
    let hrows: Vec<Vec<f32>> = (0..sh)
        .map(|y| {
            let row = &src[y * sw..(y + 1) * sw];
            xt.iter()
                .map(|&(s, f)| {
                    let s = s as usize;
                    if s + 1 < sw {
                        row[s] * (1.0 - f) + row[s + 1] * f
                    } else {
                        row[s]
                    }
                })
                .collect()
        })
        .collect();
    let mut out = vec![0f32; dh * dw];
    for (dy, (sy, fy)) in linear_taps(sh, dh, false).into_iter().enumerate() {
        let (b0, b1) = (1.0 - fy, fy);
        let r0 = &hrows[clamp_idx(sy, sh)];
        let r1 = &hrows[clamp_idx(sy + 1, sh)];
        for x in 0..dw {
            out[dy * dw + x] = r0[x] * b0 + r1[x] * b1;
        }
    }
    out
}

/// Resizes every channel to `height × width` with OpenCV `INTER_LINEAR` float semantics
/// (half-pixel centres, no antialiasing, edge clamping as OpenCV).
pub fn resize_bilinear(img: &Image, height: usize, width: usize) -> Image {
    let mut out = Image::zeros(img.channels, height, width);
    if height == 0 || width == 0 || img.height == 0 || img.width == 0 {
        return out;
    }
    for c in 0..img.channels {
        let r = resize_f32(img.plane(c), img.height, img.width, height, width);
        out.plane_mut(c).copy_from_slice(&r);
    }
    out
}

/// OpenCV `borderInterpolate` with `BORDER_REFLECT_101`.
fn reflect101(mut p: isize, len: usize) -> usize {
    let n = len as isize;
    if n == 1 {
        return 0;
    }
    while p < 0 || p >= n {
        if p < 0 {
            p = -p;
        } else {
            p = 2 * n - p - 2;
        }
    }
    p as usize
}

/// OpenCV `pyrDown` (default size `((w + 1) / 2, (h + 1) / 2)`, `BORDER_REFLECT_101`), per
/// channel, float arithmetic in OpenCV's order.
pub fn pyr_down(img: &Image) -> Image {
    let (h, w) = (img.height, img.width);
    let (dh, dw) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = Image::zeros(img.channels, dh, dw);
    if h == 0 || w == 0 {
        return out;
    }
    let xi: Vec<[usize; 5]> = (0..dw)
        .map(|x| {
            let c = 2 * x as isize;
            [-2isize, -1, 0, 1, 2].map(|k| reflect101(c + k, w))
        })
        .collect();
    for c in 0..img.channels {
        let src = img.plane(c);
        // Horizontal pass for all rows.
        let rows: Vec<Vec<f32>> = (0..h)
            .map(|y| {
                let r = &src[y * w..(y + 1) * w];
                xi.iter()
                    .map(|t| r[t[2]] * 6.0 + (r[t[1]] + r[t[3]]) * 4.0 + r[t[0]] + r[t[4]])
                    .collect()
            })
            .collect();
        let dst = out.plane_mut(c);
        for y in 0..dh {
            let cy = 2 * y as isize;
            let t = [-2isize, -1, 0, 1, 2].map(|k| reflect101(cy + k, h));
            let (r0, r1, r2, r3, r4) = (
                &rows[t[0]],
                &rows[t[1]],
                &rows[t[2]],
                &rows[t[3]],
                &rows[t[4]],
            );
            for x in 0..dw {
                dst[y * dw + x] =
                    (r2[x] * 6.0 + (r1[x] + r3[x]) * 4.0 + r0[x] + r4[x]) * (1.0 / 256.0);
            }
        }
    }
    out
}

/// OpenCV `pyrUp` to the default size `2h × 2w`.
pub fn pyr_up(img: &Image) -> Image {
    pyr_up_inner(img, 2 * img.height, 2 * img.width)
}

/// OpenCV `pyrUp` with an explicit destination size, which must satisfy OpenCV's rule
/// `|dst − 2·src| ≤ dst mod 2` on each axis (so an odd original size can be restored after
/// [`pyr_down`]).
pub fn pyr_up_to(img: &Image, height: usize, width: usize) -> Result<Image> {
    let ok = |d: usize, s: usize| (d as isize - 2 * s as isize).unsigned_abs() == d % 2;
    if !ok(height, img.height) || !ok(width, img.width) || img.height == 0 || img.width == 0 {
        return Err(Error::Shape(format!(
            "pyrUp cannot map {}×{} to {height}×{width}",
            img.height, img.width
        )));
    }
    Ok(pyr_up_inner(img, height, width))
}

fn pyr_up_inner(img: &Image, dh: usize, dw: usize) -> Image {
    let (h, w) = (img.height, img.width);
    let mut out = Image::zeros(img.channels, dh, dw);
    if h == 0 || w == 0 {
        return out;
    }
    // Horizontal pass (writes 2w values; a wider destination repeats the last one).
    let hpass = |r: &[f32]| -> Vec<f32> {
        let mut row = vec![0f32; (2 * w).max(dw)];
        if w == 1 {
            row[0] = r[0] * 8.0;
            row[1] = r[0] * 8.0;
        } else {
            row[0] = r[0] * 6.0 + r[1] * 2.0;
            row[1] = (r[0] + r[1]) * 4.0;
            for x in 1..w - 1 {
                row[2 * x] = r[x - 1] + r[x] * 6.0 + r[x + 1];
                row[2 * x + 1] = (r[x] + r[x + 1]) * 4.0;
            }
            row[2 * w - 2] = r[w - 2] + r[w - 1] * 7.0;
            row[2 * w - 1] = r[w - 1] * 8.0;
        }
        if dw > 2 * w {
            row[dw - 1] = row[2 * w - 1];
        }
        row
    };
    for c in 0..img.channels {
        let src = img.plane(c);
        let rows: Vec<Vec<f32>> = (0..h).map(|y| hpass(&src[y * w..(y + 1) * w])).collect();
        let row_of = |sy: isize| -> &Vec<f32> { &rows[reflect101(sy * 2, 2 * h) / 2] };
        let dst = out.plane_mut(c);
        for y in 0..h {
            let (r0, r1, r2) = (
                row_of(y as isize - 1),
                row_of(y as isize),
                row_of(y as isize + 1),
            );
            let y0 = 2 * y;
            let y1 = (2 * y + 1).min(dh - 1);
            for x in 0..dw {
                let t1 = (r1[x] + r2[x]) * 4.0 * (1.0 / 64.0);
                let t0 = (r0[x] + r1[x] * 6.0 + r2[x]) * (1.0 / 64.0);
                if y1 < dh {
                    dst[y1 * dw + x] = t1;
                }
                if y0 < dh {
                    dst[y0 * dw + x] = t0;
                }
            }
        }
        if dh > 2 * h {
            let (a, b) = dst.split_at_mut((dh - 1) * dw);
            b.copy_from_slice(&a[(2 * h - 1) * dw..2 * h * dw]);
        }
    }
    out
}

/// The frequency split of design §1.2: `I_l = pyrUp(pyrDown(I))` (restored to the input size,
/// odd sizes included) and `I_h = I − I_l`, both unnormalised.
pub fn frequency_split(img: &Image) -> (Image, Image) {
    let down = pyr_down(img);
    let low = pyr_up_inner(&down, img.height, img.width);
    let high_data = img.data.iter().zip(&low.data).map(|(a, b)| a - b).collect();
    let high = Image {
        channels: img.channels,
        height: img.height,
        width: img.width,
        data: high_data,
    };
    (low, high)
}

/// Normalises a 3-channel image in place with the ImageNet mean and std
/// (`(v − mean[c]) / std[c]`). Images with another channel count are left unchanged.
pub fn normalize_imagenet(img: &mut Image) {
    if img.channels != 3 {
        return;
    }
    for c in 0..3 {
        let (m, s) = (IMAGENET_MEAN[c], IMAGENET_STD[c]);
        for v in img.plane_mut(c) {
            *v = (*v - m) / s;
        }
    }
}

/// Quantises `[0, 1]` to 8 bits (round to nearest, clamped).
pub fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

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

/// 8-bit grey as `cv2.cvtColor(..., COLOR_RGB2GRAY)` computes it (fixed-point
/// `0.299 R + 0.587 G + 0.114 B`) after quantising each channel to 8 bits. A 1-channel image
/// is only quantised.
pub fn to_grey_u8(img: &Image) -> Vec<u8> {
    let n = img.plane_len();
    if img.channels < 3 {
        return img.data[..n].iter().map(|&v| to_u8(v)).collect();
    }
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    (0..n)
        .map(|i| grey_from_rgb_u8(to_u8(r[i]), to_u8(g[i]), to_u8(b[i])))
        .collect()
}

/// OpenCV's fixed-point RGB → grey for 8-bit pixels.
pub fn grey_from_rgb_u8(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 4899 + g as u32 * 9617 + b as u32 * 1868 + (1 << 13)) >> 14) as u8
}

/// Rotates every channel by `angle_deg` about the image centre (`((w − 1)/2, (h − 1)/2)`, as
/// imgaug's `Affine(rotate=…)`), bilinear, with a constant border: taps outside the image
/// read `fill[c]` (the last value of `fill` is reused for further channels).
pub fn rotate(img: &Image, angle_deg: f64, fill: &[f32]) -> Image {
    let (h, w) = (img.height, img.width);
    let mut out = Image::zeros(img.channels, h, w);
    if h == 0 || w == 0 {
        return out;
    }
    let (s, c) = angle_deg.to_radians().sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    // Inverse mapping of every destination pixel, shared by all channels.
    let mut taps = Vec::with_capacity(h * w);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let sx = c * dx + s * dy + cx;
            let sy = -s * dx + c * dy + cy;
            let (x0, y0) = (sx.floor(), sy.floor());
            taps.push((x0 as isize, y0 as isize, (sx - x0) as f32, (sy - y0) as f32));
        }
    }
    for ch in 0..img.channels {
        let f = fill.get(ch).or(fill.last()).copied().unwrap_or(0.0);
        let src = img.plane(ch);
        let at = |x: isize, y: isize| -> f32 {
            if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
                f
            } else {
                src[y as usize * w + x as usize]
            }
        };
        let dst = out.plane_mut(ch);
        for (i, &(x0, y0, fx, fy)) in taps.iter().enumerate() {
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
            let bot = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
            dst[i] = top * (1.0 - fy) + bot * fy;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize) -> Image {
        let data = (0..c * h * w)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        Image::from_data(c, h, w, data).unwrap()
    }

    #[test]
    fn frequency_split_reconstructs_and_keeps_shape() {
        for (h, w) in [(8, 8), (7, 9), (1, 5), (2, 2), (33, 17)] {
            let img = ramp(3, h, w);
            let (lo, hi) = frequency_split(&img);
            assert!(lo.same_shape(&img) && hi.same_shape(&img));
            for i in 0..img.data.len() {
                assert!((lo.data[i] + hi.data[i] - img.data[i]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn constant_image_has_no_high_frequencies() {
        for (h, w) in [(16, 16), (15, 11), (3, 1)] {
            let img = Image::filled(3, h, w, 0.3);
            let (lo, hi) = frequency_split(&img);
            assert!(lo.data.iter().all(|v| (v - 0.3).abs() < 1e-6), "{h}x{w}");
            assert!(hi.data.iter().all(|v| v.abs() < 1e-6));
        }
    }

    #[test]
    fn pyr_up_to_rejects_bad_sizes() {
        let img = ramp(1, 4, 4);
        assert!(pyr_up_to(&img, 8, 7).is_ok());
        assert!(pyr_up_to(&img, 8, 9).is_ok());
        assert!(pyr_up_to(&img, 8, 6).is_err());
        assert!(pyr_up_to(&img, 10, 8).is_err());
    }

    #[test]
    fn rotate_zero_is_identity_and_90_moves_corners() {
        let img = ramp(2, 5, 5);
        let r = rotate(&img, 0.0, &[0.0]);
        for (a, b) in r.data.iter().zip(&img.data) {
            assert!((a - b).abs() < 1e-6);
        }
        let r = rotate(&img, 90.0, &[0.0]);
        // A 90° turn of a square maps the image onto itself (no fill).
        let mut sorted_a = r.plane(0).to_vec();
        let mut sorted_b = img.plane(0).to_vec();
        sorted_a.sort_by(f32::total_cmp);
        sorted_b.sort_by(f32::total_cmp);
        for (a, b) in sorted_a.iter().zip(&sorted_b) {
            assert!((a - b).abs() < 1e-5);
        }
        // 45° on a square leaves the corners to the fill value.
        let r = rotate(&Image::filled(1, 9, 9, 1.0), 45.0, &[0.25]);
        assert!((r.get(0, 0, 0) - 0.25).abs() < 1e-6);
        assert!((r.get(0, 4, 4) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn normalize_matches_formula() {
        let mut img = Image::filled(3, 2, 2, 0.5);
        normalize_imagenet(&mut img);
        for c in 0..3 {
            let want = (0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            assert!(img.plane(c).iter().all(|v| (v - want).abs() < 1e-6));
        }
    }

    #[test]
    fn grey_matches_opencv_coefficients() {
        assert_eq!(grey_from_rgb_u8(255, 255, 255), 255);
        assert_eq!(grey_from_rgb_u8(0, 0, 0), 0);
        assert_eq!(grey_from_rgb_u8(255, 0, 0), 76);
        assert_eq!(grey_from_rgb_u8(0, 255, 0), 150);
        assert_eq!(grey_from_rgb_u8(0, 0, 255), 29);
    }
}
