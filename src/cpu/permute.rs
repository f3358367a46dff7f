//! Dimension permutation of a row-major tensor (reference for [`crate::kernels::permute`]).

/// `out[i_{perm[0]}, …, i_{perm[d−1]}] = x[i_0, …, i_{d−1}]`: output dimension `k` is input
/// dimension `perm[k]` (`torch.permute` semantics). `shape` is the input's shape.
pub fn permute(x: &[f32], shape: &[usize], perm: &[usize]) -> Vec<f32> {
    let d = shape.len();
    let mut in_strides = vec![1usize; d];
    for i in (0..d.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; d]; // output coordinates, last fastest
    for _ in 0..n {
        let src: usize = (0..d).map(|k| idx[k] * in_strides[perm[k]]).sum();
        out.push(x[src]);
        for k in (0..d).rev() {
            idx[k] += 1;
            if idx[k] < out_shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// `[rows, cols] → [cols, rows]`.
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    permute(x, &[rows, cols], &[1, 0])
}
