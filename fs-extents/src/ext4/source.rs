//! Where an ext4 file system is read from: an image file, a block device, or
//! bytes in memory (tests, fuzzing).

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// Positioned reads from something that holds a file system.
pub trait ReadAt {
    /// Fills `buf` from byte `offset`; fails with `UnexpectedEof` past the end.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Length in bytes.
    fn len_bytes(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        // Block devices report a metadata length of 0; seeking to the end works for both.
        let mut f = self;
        f.seek(SeekFrom::End(0))
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        let src = self.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        (**self).len_bytes()
    }
}

/// The part of a source from byte `start` on: a file system that starts at a
/// partition or loop offset inside the device.
#[derive(Debug)]
pub struct Window<R> {
    inner: R,
    start: u64,
}

impl<R: ReadAt> Window<R> {
    /// The bytes of `inner` from `start` on.
    pub fn new(inner: R, start: u64) -> Self {
        Self { inner, start }
    }
}

impl<R: ReadAt> ReadAt for Window<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let at = self.start.checked_add(offset).ok_or(io::ErrorKind::UnexpectedEof)?;
        self.inner.read_exact_at(buf, at)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.inner.len_bytes()?.saturating_sub(self.start))
    }
}

/// Little-endian field readers over buffers whose size the caller fixed.
/// An out-of-bounds offset is a programmer error (the offsets are constants
/// or were checked against the buffer length), so these index directly.
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
