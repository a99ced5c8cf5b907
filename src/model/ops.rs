//! Differentiable tensor ops the decoder needs (softmax, log-softmax, RMSNorm, rotary embedding).
//!
//! candle's fused kernels for these have no backward and silently cut the graph
//! (CANDLE-NOTES.md, trap 1), so every op here either composes ops that have a backward or is a
//! `CustomOp` that defines its own.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};

/// `x W^T` for `x` `[rows, in]` and `W` `[out, in]`. A weight held in a lower precision than
/// the activations (bf16, f16) multiplies in its own dtype, and the product comes back in the
/// activations' dtype: the residual stream, norms and softmaxes stay in f32.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dtype() == w.dtype() {
        return x.matmul(&w.t()?);
    }
    x.to_dtype(w.dtype())?.matmul(&w.t()?)?.to_dtype(x.dtype())
}

/// `x W^T` (see [`matmul_t`]) for a weight that never trains (a LoRA base): its backward gives
/// `x` its gradient and nothing else. candle's own matmul backward would also compute the
/// weight's gradient, a weight-sized product per projection that a frozen weight throws away.
/// On the CPU the product is computed without a graph and handed on by a custom op whose
/// backward is `grad W`; elsewhere it falls back to the plain product.
pub fn frozen_matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !x.track_op() || !x.device().is_cpu() {
        return matmul_t(x, w);
    }
    let value = matmul_t(&x.detach(), w)?.contiguous()?;
    x.apply_op1(FrozenProduct {
        value,
        weight: w.clone(),
    })
}

/// The value of `x W^T`, computed beforehand, with the gradient `grad W` for `x`.
struct FrozenProduct {
    value: Tensor,
    weight: Tensor,
}

impl CustomOp1 for FrozenProduct {
    fn name(&self) -> &'static str {
        "oprl-frozen-product"
    }

    fn cpu_fwd(&self, _x: &CpuStorage, _layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (storage, layout) = self.value.storage_and_layout();
        match &*storage {
            candle_core::Storage::Cpu(s) => {
                use candle_core::backend::BackendStorage;
                Ok((s.try_clone(layout)?, layout.shape().clone()))
            }
            _ => candle_core::bail!("the frozen product runs on the CPU"),
        }
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let w = &self.weight;
        let g = grad
            .to_dtype(w.dtype())?
            .matmul(w)?
            .to_dtype(grad.dtype())?;
        Ok(Some(g))
    }
}

/// Softmax over the last dimension, with a backward.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        return x.contiguous()?.apply_op1(SoftmaxLast);
    }
    candle_nn::ops::softmax(x, D::Minus1)
}

/// `softmax(scores + mask)` over the last dimension, with a backward to `scores`.
/// `scores`: [B, H, T, S]; `mask`: [B, 1, T, S] additive (0 or a large negative number).
pub fn masked_softmax_last(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if scores.device().is_cpu() && scores.dtype() == candle_core::DType::F32 {
        return scores
            .contiguous()?
            .apply_op2(&mask.contiguous()?, MaskedSoftmax);
    }
    softmax_last(&scores.broadcast_add(mask)?)
}

/// Attention of one new query per row against a KV cache, fused (CPU, f32, no backward: used
/// only for detached decoding). `q`: [B, H, 1, hd]; `k`, `v`: cache buffers [B, KV, cap, hd] of
/// which the first `len` columns are filled; row `b` attends to columns `pads[b]..len`.
/// Grouped-query heads read their shared KV head directly. Returns [B, H, 1, hd].
pub fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    len: usize,
    pads: &[usize],
    scale: f64,
) -> Result<Tensor> {
    let op = DecodeAttention {
        len,
        pads: pads.to_vec(),
        scale: scale as f32,
    };
    q.contiguous()?.apply_op3_no_bwd(k, v, &op)
}

struct DecodeAttention {
    len: usize,
    pads: Vec<usize>,
    scale: f32,
}

impl candle_core::CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "oprl-decode-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, h, one, hd) = ql.shape().dims4()?;
        let (kb, kvh, cap, khd) = kl.shape().dims4()?;
        if one != 1 || kb != b || khd != hd || vl.shape() != kl.shape() || h % kvh != 0 {
            candle_core::bail!(
                "decode attention: q {:?} vs cache {:?}",
                ql.shape(),
                kl.shape()
            )
        }
        if self.len > cap || self.pads.len() != b {
            candle_core::bail!("decode attention: {} columns in a cache of {cap}", self.len)
        }
        let (q, k, v) = (
            contiguous_f32(qs, ql)?,
            contiguous_f32(ks, kl)?,
            contiguous_f32(vs, vl)?,
        );
        let group = h / kvh;
        let mut out = vec![0f32; b * h * hd];
        let mut scores = vec![0f32; self.len];
        for bi in 0..b {
            let start = self.pads[bi].min(self.len.saturating_sub(1));
            for hi in 0..h {
                let qrow = &q[(bi * h + hi) * hd..][..hd];
                let base = (bi * kvh + hi / group) * cap * hd;
                let keys = &k[base..base + self.len * hd];
                let vals = &v[base..base + self.len * hd];
                let sc = &mut scores[start..self.len];
                for (j, s) in sc.iter_mut().enumerate() {
                    let krow = &keys[(start + j) * hd..][..hd];
                    *s = dot(qrow, krow) * self.scale;
                }
                let max = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut total = 0f32;
                for s in sc.iter_mut() {
                    *s = (*s - max).exp();
                    total += *s;
                }
                let o = &mut out[(bi * h + hi) * hd..][..hd];
                for (j, &p) in sc.iter().enumerate() {
                    let w = p / total;
                    let vrow = &vals[(start + j) * hd..][..hd];
                    for (oi, &vi) in o.iter_mut().zip(vrow) {
                        *oi += w * vi;
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four partial sums let the compiler vectorise without reassociating one long chain.
    let mut acc = [0f32; 4];
    let chunks = a.len() / 4 * 4;
    for i in (0..chunks).step_by(4) {
        for l in 0..4 {
            acc[l] += a[i + l] * b[i + l];
        }
    }
    let mut s = acc[0] + acc[1] + acc[2] + acc[3];
    for i in chunks..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// Log-prob of a chosen id and the entropy of each row's distribution, fused: `logits` [N, V],
/// `ids` [N] (u32) -> [N, 2] holding `(log softmax(l)[id], -sum p log p)`. One pass forward and
/// one backward, with no [N, V] intermediates (a Qwen2 vocabulary makes those gigabytes).
/// Backward: `dl_j = g_lp (1[j = id] - p_j) - g_H p_j (log p_j + H)`.
pub fn logprob_entropy(logits: &Tensor, ids: &Tensor) -> Result<Tensor> {
    if logits.device().is_cpu() && logits.dtype() == candle_core::DType::F32 {
        return logits
            .contiguous()?
            .apply_op2(&ids.contiguous()?, LogprobEntropy);
    }
    let logp = log_softmax_last(logits)?;
    let chosen = logp.gather(&ids.unsqueeze(1)?.contiguous()?, 1)?;
    let entropy = (logp.exp()? * &logp)?.sum_keepdim(1)?.neg()?;
    Tensor::cat(&[chosen, entropy], 1)
}

struct LogprobEntropy;

/// Log-sum-exp and entropy of the softmax of one row of logits. Sums in f64: a 150k-token
/// vocabulary loses digits in f32.
fn row_stats(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut z = 0f64;
    let mut zl = 0f64;
    for &l in row {
        let shifted = (l - max) as f64;
        let e = (l - max).exp() as f64;
        z += e;
        zl += e * shifted;
    }
    // H = lse - E[l] = ln z - E[l - max]
    ((max as f64 + z.ln()) as f32, (z.ln() - zl / z) as f32)
}

/// The token ids of a contiguous `u32` input, forward and backward alike.
fn contiguous_ids<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [u32]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&storage.as_slice::<u32>()?[a..b]),
        None => candle_core::bail!("logprob_entropy needs contiguous ids"),
    }
}

fn id_at(ids: &[u32], row: usize, vocab: usize) -> Result<usize> {
    let id = ids[row] as usize;
    if id >= vocab {
        candle_core::bail!("token id {id} outside a vocabulary of {vocab}")
    }
    Ok(id)
}

impl CustomOp2 for LogprobEntropy {
    fn name(&self) -> &'static str {
        "oprl-logprob-entropy"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        is: &CpuStorage,
        il: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, vocab) = ll.shape().dims2()?;
        let logits = contiguous_f32(ls, ll)?;
        let ids = contiguous_ids(is, il)?;
        if ids.len() != n {
            candle_core::bail!("{} ids for {n} rows of logits", ids.len())
        }
        let mut out = vec![0f32; n * 2];
        for (r, row) in logits.chunks_exact(vocab).enumerate() {
            let (lse, entropy) = row_stats(row);
            out[2 * r] = row[id_at(ids, r, vocab)?] - lse;
            out[2 * r + 1] = entropy;
        }
        Ok((CpuStorage::F32(out), Shape::from((n, 2))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        ids: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let logits = logits.detach();
        let g = grad.contiguous()?;
        Ok((
            Some(logits.apply_op3_no_bwd(ids, &g, &LogprobEntropyBackward)?),
            None,
        ))
    }
}

struct LogprobEntropyBackward;

impl candle_core::CustomOp3 for LogprobEntropyBackward {
    fn name(&self) -> &'static str {
        "oprl-logprob-entropy-backward"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        is: &CpuStorage,
        il: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, vocab) = ll.shape().dims2()?;
        let logits = contiguous_f32(ls, ll)?;
        let ids = contiguous_ids(is, il)?;
        let g = contiguous_f32(gs, gl)?;
        let mut out = vec![0f32; logits.len()];
        for (r, (row, dst)) in logits
            .chunks_exact(vocab)
            .zip(out.chunks_exact_mut(vocab))
            .enumerate()
        {
            let (lse, entropy) = row_stats(row);
            let (g_lp, g_h) = (g[2 * r], g[2 * r + 1]);
            for (d, &l) in dst.iter_mut().zip(row) {
                let logp = l - lse;
                let p = logp.exp();
                *d = -g_lp * p - g_h * p * (logp + entropy);
            }
            dst[id_at(ids, r, vocab)?] += g_lp;
        }
        Ok((CpuStorage::F32(out), ll.shape().clone()))
    }
}

/// Log-softmax over the last dimension. The max is detached: it cancels in the gradient.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let log_norm = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&log_norm)
}

/// RMSNorm `x / sqrt(mean(x^2) + eps) * weight` over the last dimension, with a backward.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.is_contiguous() {
        return x.apply_op2(weight, RmsNorm { eps: eps as f32 });
    }
    rms_norm_composed(x, weight, eps)
}

/// RMSNorm from primitive ops (any device, any layout).
pub fn rms_norm_composed(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (mean_sq + eps)?.sqrt()?.recip()?;
    x.broadcast_mul(&inv)?.broadcast_mul(weight)
}

/// Rotary embedding in the Hugging Face "rotate half" layout: with `x = [x1, x2]` split in halves,
/// `[x1 cos - x2 sin, x2 cos + x1 sin]`. `x`: [B, H, T, hd]; `cos`, `sin`: [B, 1, T, hd/2].
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let out1 = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let out2 = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Tensor::cat(&[out1, out2], D::Minus1)
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused op needs a contiguous input"),
    }
}

/// Fused softmax over the last dim (CPU, f32). Backward: `dx = y * (g - sum(g * y))`.
struct SoftmaxLast;

impl CustomOp1 for SoftmaxLast {
    fn name(&self) -> &'static str {
        "oprl-softmax-last"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = layout.shape().dims().last().copied().unwrap_or(1);
        let src = contiguous_f32(storage, layout)?;
        let mut out = vec![0f32; src.len()];
        for (x, y) in src.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            softmax_row(x, y);
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let y = res.detach().contiguous()?;
        let g = grad_res.contiguous()?;
        Ok(Some(y.apply_op2_no_bwd(&g, &SoftmaxBackward)?))
    }
}

fn softmax_row(x: &[f32], y: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for (yi, &xi) in y.iter_mut().zip(x) {
        let e = (xi - max).exp();
        *yi = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for yi in y.iter_mut() {
        *yi *= inv;
    }
}

/// Fused `softmax(scores + mask)` with the mask broadcast over heads (CPU, f32).
struct MaskedSoftmax;

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "oprl-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        ss: &CpuStorage,
        sl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, s) = sl.shape().dims4()?;
        if ml.shape().dims() != [b, 1, t, s] {
            candle_core::bail!(
                "mask shape {:?} does not fit scores {:?}",
                ml.shape(),
                sl.shape()
            )
        }
        let scores = contiguous_f32(ss, sl)?;
        let mask = contiguous_f32(ms, ml)?;
        let mut out = vec![0f32; scores.len()];
        let mut row = vec![0f32; s];
        for bi in 0..b {
            for hi in 0..h {
                for ti in 0..t {
                    let at = ((bi * h + hi) * t + ti) * s;
                    let m = &mask[(bi * t + ti) * s..][..s];
                    for ((r, &x), &mv) in row.iter_mut().zip(&scores[at..at + s]).zip(m) {
                        *r = x + mv;
                    }
                    softmax_row(&row, &mut out[at..at + s]);
                }
            }
        }
        Ok((CpuStorage::F32(out), sl.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let y = res.detach();
        let g = grad.contiguous()?;
        Ok((Some(y.apply_op2_no_bwd(&g, &SoftmaxBackward)?), None))
    }
}

/// `dx = y * (g - <g, y>)` row-wise, from contiguous `y` and `g`.
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "oprl-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = yl.shape().dims().last().copied().unwrap_or(1);
        let y = contiguous_f32(ys, yl)?;
        let g = contiguous_f32(gs, gl)?;
        let out = per_row_pair(y, g, n, |yr, gr, dr| {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((d, &yi), &gi) in dr.iter_mut().zip(yr).zip(gr) {
                *d = yi * (gi - dot);
            }
        });
        Ok((CpuStorage::F32(out), yl.shape().clone()))
    }
}

/// Fused RMSNorm (CPU, f32, contiguous x). Backward computed from x, weight and the upstream
/// gradient in one pass per row.
struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "oprl-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = xl.shape().dims().last().copied().unwrap_or(1);
        let x = contiguous_f32(xs, xl)?;
        let w = contiguous_f32(ws, wl)?;
        if w.len() != n {
            candle_core::bail!("rms_norm: weight has {} entries, rows have {n}", w.len())
        }
        let mut out = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            let inv = inv_rms(xr, self.eps);
            for ((y, &xi), &wi) in yr.iter_mut().zip(xr).zip(w) {
                *y = xi * inv * wi;
            }
        }
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let x = x.detach().contiguous()?;
        let g = grad.contiguous()?;
        let w = w.detach().contiguous()?;
        // dx in one fused pass; dw = sum over rows of g * x * inv_rms (small, composed).
        let dx = x.apply_op3_no_bwd(&w, &g, &RmsNormBackward { eps: self.eps })?;
        let n = x.dim(D::Minus1)?;
        let normed = rms_norm_composed(
            &x,
            &Tensor::ones(n, x.dtype(), x.device())?,
            self.eps as f64,
        )?;
        let dw = (g * normed)?.reshape(((), n))?.sum(0)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `f(a_row, b_row, out_row)` over the rows (length `n`) of two same-shaped buffers: the shape
/// of every fused backward kernel here.
fn per_row_pair(
    a: &[f32],
    b: &[f32],
    n: usize,
    mut f: impl FnMut(&[f32], &[f32], &mut [f32]),
) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    for ((ar, br), or) in a
        .chunks_exact(n)
        .zip(b.chunks_exact(n))
        .zip(out.chunks_exact_mut(n))
    {
        f(ar, br, or);
    }
    out
}

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (mean_sq + eps).sqrt()
}

/// `dx_i = r w_i g_i - x_i r^3 / n * sum_j(g_j w_j x_j)` with `r = 1/sqrt(mean(x^2)+eps)`.
struct RmsNormBackward {
    eps: f32,
}

impl candle_core::CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "oprl-rms-norm-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = xl.shape().dims().last().copied().unwrap_or(1);
        let x = contiguous_f32(xs, xl)?;
        let w = contiguous_f32(ws, wl)?;
        let g = contiguous_f32(gs, gl)?;
        let out = per_row_pair(x, g, n, |xr, gr, dr| {
            let r = inv_rms(xr, self.eps);
            let dot: f32 = xr
                .iter()
                .zip(gr)
                .zip(&*w)
                .map(|((a, b), c)| a * b * c)
                .sum();
            let k = r * r * r * dot / n as f32;
            for (((d, &xi), &gi), &wi) in dr.iter_mut().zip(xr).zip(gr).zip(&*w) {
                *d = r * wi * gi - xi * k;
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::model::tests::max_diff as max_abs_diff;

    fn sample(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        // A fixed, irregular pattern (no RNG needed for an op test).
        let v: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.7311 + seed as f32).sin() * 2.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn fused_softmax_matches_composed_forward_and_backward() {
        let x = Var::from_tensor(&sample(&[3, 5, 7], 1)).unwrap();
        let g = sample(&[3, 5, 7], 2);
        let fused = softmax_last(x.as_tensor()).unwrap();
        let plain = candle_nn::ops::softmax(x.as_tensor(), D::Minus1).unwrap();
        assert!(max_abs_diff(&fused, &plain) < 1e-6);
        let gf = (fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (gf.get(&x).unwrap(), gp.get(&x).unwrap());
        assert!(max_abs_diff(a, b) < 1e-5);
    }

    #[test]
    fn fused_rms_norm_matches_composed_forward_and_backward() {
        let x = Var::from_tensor(&sample(&[4, 6, 8], 3)).unwrap();
        let w = Var::from_tensor(&sample(&[8], 4)).unwrap();
        let g = sample(&[4, 6, 8], 5);
        let fused = rms_norm(x.as_tensor(), w.as_tensor(), 1e-5).unwrap();
        let plain = rms_norm_composed(x.as_tensor(), w.as_tensor(), 1e-5).unwrap();
        assert!(max_abs_diff(&fused, &plain) < 1e-5);
        let gf = (fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &g).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w] {
            assert!(max_abs_diff(gf.get(v).unwrap(), gp.get(v).unwrap()) < 1e-4);
        }
    }

    #[test]
    fn masked_softmax_matches_add_then_softmax() {
        let s = Var::from_tensor(&sample(&[2, 3, 4, 5], 7)).unwrap();
        let mut m = vec![0f32; 2 * 4 * 5];
        for (i, v) in m.iter_mut().enumerate() {
            if i % 3 == 1 {
                *v = -1e9;
            }
        }
        let m = Tensor::from_vec(m, (2, 1, 4, 5), &Device::Cpu).unwrap();
        let g = sample(&[2, 3, 4, 5], 8);
        let fused = masked_softmax_last(s.as_tensor(), &m).unwrap();
        let plain =
            candle_nn::ops::softmax(&s.as_tensor().broadcast_add(&m).unwrap(), D::Minus1).unwrap();
        assert!(max_abs_diff(&fused, &plain) < 1e-6);
        let gf = (fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &g).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_abs_diff(gf.get(&s).unwrap(), gp.get(&s).unwrap()) < 1e-5);
    }

    #[test]
    fn fused_logprob_entropy_matches_composed_forward_and_backward() {
        let l = Var::from_tensor(&(sample(&[6, 11], 9) * 3.0).unwrap()).unwrap();
        let ids = Tensor::new(&[0u32, 10, 3, 3, 7, 1], &Device::Cpu).unwrap();
        let g = sample(&[6, 2], 10);
        let fused = logprob_entropy(l.as_tensor(), &ids).unwrap();
        let logp = log_softmax_last(l.as_tensor()).unwrap();
        let chosen = logp.gather(&ids.unsqueeze(1).unwrap(), 1).unwrap();
        let ent = (logp.exp().unwrap() * &logp)
            .unwrap()
            .sum_keepdim(1)
            .unwrap()
            .neg()
            .unwrap();
        let plain = Tensor::cat(&[chosen, ent], 1).unwrap();
        assert!(max_abs_diff(&fused, &plain) < 1e-5);
        let gf = (fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &g).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_abs_diff(gf.get(&l).unwrap(), gp.get(&l).unwrap()) < 1e-5);
        assert!(logprob_entropy(
            l.as_tensor(),
            &Tensor::new(&[0u32, 11, 0, 0, 0, 0], &Device::Cpu).unwrap()
        )
        .is_err());
    }

    #[test]
    fn log_softmax_is_log_of_softmax() {
        let x = sample(&[2, 9], 6);
        let a = log_softmax_last(&x).unwrap();
        let b = softmax_last(&x).unwrap().log().unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-5);
    }
}
