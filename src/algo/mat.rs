//! [`Mat`]: a dense row-major `[rows, cols]` f32 matrix, the slice-form stand-in for veRL's
//! `[batch, response_length]` tensors (one row per sequence, one column per response token).

use super::{check_len, AlgoError};
use candle_core::{Device, Tensor};

/// A dense row-major `[rows, cols]` matrix of f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    /// `rows * cols` values, row by row.
    pub data: Vec<f32>,
}

impl Mat {
    /// A matrix from its row-major data; errors when `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Mat, AlgoError> {
        check_len("matrix data", data.len(), rows * cols)?;
        Ok(Mat { rows, cols, data })
    }

    /// A `[rows, cols]` matrix filled with `value`.
    pub fn filled(rows: usize, cols: usize, value: f32) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![value; rows * cols],
        }
    }

    /// A matrix from equally long rows; errors on ragged rows.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Mat, AlgoError> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            check_len("matrix row", row.len(), cols)?;
            data.extend_from_slice(row);
        }
        Ok(Mat {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows as vectors.
    pub fn to_rows(&self) -> Vec<Vec<f32>> {
        (0..self.rows).map(|i| self.row(i).to_vec()).collect()
    }

    /// Errors unless `other` has this matrix's shape.
    pub fn check_same_shape(&self, other: &Mat, what: &'static str) -> Result<(), AlgoError> {
        check_len(what, other.rows, self.rows)?;
        check_len(what, other.cols, self.cols)
    }

    /// Elementwise map into a new matrix of the same shape.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Mat {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|&x| f(x)).collect(),
        }
    }

    /// The matrix as a `[rows, cols]` f32 tensor.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor, AlgoError> {
        Ok(Tensor::from_vec(
            self.data.clone(),
            (self.rows, self.cols),
            device,
        )?)
    }

    /// A matrix from a 2-d tensor (any float dtype; converted to f32).
    pub fn from_tensor(t: &Tensor) -> Result<Mat, AlgoError> {
        let (rows, cols) = t.dims2()?;
        let data = t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Mat::new(rows, cols, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_ragged_rows_error() {
        let m = Mat::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        assert_eq!(m.row(1), &[3.0, 4.0]);
        assert_eq!(m.to_rows(), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert!(matches!(
            Mat::from_rows(&[vec![1.0], vec![1.0, 2.0]]),
            Err(AlgoError::LengthMismatch { .. })
        ));
        assert!(Mat::new(2, 2, vec![0.0; 3]).is_err());
    }

    #[test]
    fn tensor_round_trip() {
        let m = Mat::from_rows(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
        let t = m.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3]);
        assert_eq!(Mat::from_tensor(&t).unwrap(), m);
    }
}
