//! CPU image operations with OpenCV's exact semantics (design §1.1, §1.2).
//!
//! Images are planar `CHW` `f32` ([`Image`]), the layout the GPU code uploads. One file per
//! concern, everything re-exported here (`dfd::image::load_rgb`, …):
//!
//! - `decode.rs`: reading PNG, JPEG, BMP and TIFF files or buffers through the `image` crate
//!   (8- or 16-bit, grey or colour) within limits that refuse decompression bombs before
//!   allocating ([`MAX_IMAGE_SIDE`], [`MAX_IMAGE_ALLOC`]), and loading images and masks at a
//!   given size ([`load_rgb`], [`load_mask`], [`rgb_from_dynamic`]);
//! - `resize.rs`: the OpenCV-exact `INTER_LINEAR` resizes ([`resize_u8`], [`resize_u16`],
//!   [`resize_f32`], [`resize_bilinear`]);
//! - `frequency.rs`: OpenCV's `pyrDown` / `pyrUp`, the frequency split of design §1.2
//!   ([`frequency_split`]) and ImageNet normalisation;
//! - `rotate.rs`: [`rotate`], the training set's random rotation;
//! - `quantize.rs`: 8-bit quantisation and OpenCV's RGB → grey ([`to_u8`], [`to_grey_u8`]);
//! - `png.rs`: [`save_png`].
//!
//! Unlike the reference code we decode to RGB (the reference feeds BGR to an RGB network).

mod decode;
mod frequency;
mod png;
mod quantize;
mod resize;
mod rotate;

pub use decode::{
    decode_bytes, decode_file, image_dimensions, load_mask, load_mask_hw, load_rgb, load_rgb_hw,
    rgb_from_dynamic, MAX_IMAGE_ALLOC, MAX_IMAGE_SIDE,
};
pub use frequency::{
    frequency_split, normalize_imagenet, pyr_down, pyr_up, pyr_up_to, IMAGENET_MEAN, IMAGENET_STD,
};
pub use png::save_png;
pub use quantize::{grey_from_rgb_u8, to_grey_u8, to_u8};
pub use resize::{resize_bilinear, resize_f32, resize_u16, resize_u8};
pub use rotate::rotate;

use crate::error::{Error, Result};

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
