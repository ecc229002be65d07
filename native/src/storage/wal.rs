//! The write-ahead log: the file that makes a group commit durable.
//!
//! Why it exists: a durable redb commit rewrites every B-tree page the group
//! touched, checksums them and syncs them; with random document ids that is
//! several pages per document per commit. Appending the group's effects
//! ([`super::redo`]) to this file and syncing it is one sequential write.
//! So each group is logged here (durable), then committed to redb without
//! durability (visible to readers, in memory), and only every few seconds a
//! *checkpoint* makes redb durable and empties this file. After a crash the
//! store replays whatever the log holds beyond redb's last checkpoint.
//!
//! A record is `u32 payload length ++ u32 CRC-32 ++ u64 sequence ++ payload`
//! (little-endian; the CRC covers the sequence and the payload). Sequences
//! increase by one from record to record. Reading stops at the first record
//! that is cut short, fails its CRC or breaks the sequence: that is where a
//! crash interrupted an append, and nothing after it was ever acknowledged,
//! since each append is synced before the next one starts.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::error::StorageError;

/// The log file inside the store's directory.
pub const WAL_FILE: &str = "canhazdb.wal";

const HEADER_BYTES: usize = 16;

/// The largest record: a group whose effects are larger fails (without
/// harm) before anything is written, and a larger length read back is
/// damage.
pub const MAX_RECORD_BYTES: usize = 1 << 30;

/// One record read back from the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub sequence: u64,
    pub payload: Vec<u8>,
}

/// The open log, positioned for appending.
#[derive(Debug)]
pub struct Wal {
    file: File,
    len: u64,
}

impl Wal {
    /// Open (creating if needed) the log at `path` and read every intact
    /// record. A damaged tail is cut off, so appends continue after the
    /// last intact record.
    pub fn open(path: &Path) -> Result<(Wal, Vec<Record>), StorageError> {
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if created {
            // Make the new file's name durable too.
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, intact) = parse(&bytes);
        if damaged_in_the_middle(&bytes, intact, records.last().map(|record| record.sequence)) {
            return Err(StorageError::Corrupt(format!(
                "the write-ahead log {} is damaged at byte {intact}, before records that follow it",
                path.display()
            )));
        }
        if intact < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - intact,
                "the write-ahead log ends with an incomplete record (a write interrupted by a crash); dropping it"
            );
            file.set_len(intact as u64)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::Start(intact as u64))?;
        Ok((
            Wal {
                file,
                len: intact as u64,
            },
            records,
        ))
    }

    /// Append one record and sync it: when this returns, it is durable.
    pub fn append(&mut self, sequence: u64, payload: &[u8]) -> Result<(), StorageError> {
        let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|length| (*length as usize) <= MAX_RECORD_BYTES)
            .ok_or_else(|| StorageError::Io("a write-ahead log record is too large".to_owned()))?;
        record.extend_from_slice(&length.to_le_bytes());
        record.extend_from_slice(&checksum(sequence, payload).to_le_bytes());
        record.extend_from_slice(&sequence.to_le_bytes());
        record.extend_from_slice(payload);
        self.file.write_all(&record)?;
        self.file.sync_data()?;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Cut the log back to `len` bytes: undoes appends of a group that
    /// failed after its record was written.
    pub fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::Start(len))?;
        self.file.sync_data()?;
        self.len = len;
        Ok(())
    }

    /// Empty the log (everything in it is in a durable checkpoint).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.sync_data()?;
        self.len = 0;
        Ok(())
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.len
    }
}

fn checksum(sequence: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sequence.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Whether the record at `intact` is damaged although an intact record
/// follows it. Appends are synced one at a time, so a crash can only tear
/// the last record; damage before a later record is the disk's doing, and
/// cutting the log there would silently drop acknowledged writes.
fn damaged_in_the_middle(bytes: &[u8], intact: usize, last_sequence: Option<u64>) -> bool {
    let Some((_, _, payload)) = framed(bytes, intact) else {
        return false;
    };
    let next = intact + HEADER_BYTES + payload.len();
    // Only a record continuing the sequence counts: stale records left by a
    // truncation that never reached the disk carry older sequences. (If the
    // first record is the damaged one, nothing tells the two apart.)
    let Some(expected) = last_sequence.and_then(|last| last.checked_add(2)) else {
        return false;
    };
    parse(&bytes[next..])
        .0
        .first()
        .is_some_and(|record| record.sequence == expected)
}

/// The intact records at the start of `bytes`, and how many bytes they span.
fn parse(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records: Vec<Record> = Vec::new();
    let mut position = 0;
    while let Some((crc, sequence, payload)) = framed(bytes, position) {
        let in_sequence = records
            .last()
            .is_none_or(|last| last.sequence.checked_add(1) == Some(sequence));
        if checksum(sequence, payload) != crc || !in_sequence {
            break;
        }
        records.push(Record {
            sequence,
            payload: payload.to_vec(),
        });
        position += HEADER_BYTES + payload.len();
    }
    (records, position)
}

/// The record framed at `position` (CRC, sequence, payload), unchecked, or
/// `None` if its header or payload is cut short or its length is absurd.
fn framed(bytes: &[u8], position: usize) -> Option<(u32, u64, &[u8])> {
    let header = bytes.get(position..position + HEADER_BYTES)?;
    let length = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let sequence = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let start = position + HEADER_BYTES;
    let payload = (length <= MAX_RECORD_BYTES).then(|| bytes.get(start..start + length))??;
    Some((crc, sequence, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reopen(path: &Path) -> (Wal, Vec<Record>) {
        Wal::open(path).unwrap()
    }

    #[test]
    fn records_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE);
        let (mut wal, records) = reopen(&path);
        assert!(records.is_empty());
        wal.append(7, b"first").unwrap();
        wal.append(8, b"").unwrap();
        wal.append(9, b"third").unwrap();
        assert_eq!(wal.len(), 3 * HEADER_BYTES as u64 + 10);
        drop(wal);
        let (mut wal, records) = reopen(&path);
        let sequences: Vec<u64> = records.iter().map(|record| record.sequence).collect();
        assert_eq!(sequences, [7, 8, 9]);
        assert_eq!(records[2].payload, b"third");
        // Appending continues after the last record.
        wal.append(10, b"fourth").unwrap();
        drop(wal);
        assert_eq!(reopen(&path).1.len(), 4);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_appends_continue_after_the_intact_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE);
        let (mut wal, _) = reopen(&path);
        wal.append(1, b"kept").unwrap();
        wal.append(2, b"torn record").unwrap();
        drop(wal);
        let full = std::fs::read(&path).unwrap();
        let first_end = HEADER_BYTES + 4;
        for cut in first_end..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (wal, records) = reopen(&path);
            assert_eq!(records.len(), 1, "cut at {cut}");
            assert_eq!(wal.len(), first_end as u64);
        }
        let (mut wal, _) = reopen(&path);
        wal.append(2, b"again").unwrap();
        drop(wal);
        let records = reopen(&path).1;
        assert_eq!(records[1].payload, b"again");
    }

    #[test]
    fn damage_and_broken_sequences_end_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE);
        let (mut wal, _) = reopen(&path);
        wal.append(1, b"one").unwrap();
        wal.append(2, b"two").unwrap();
        wal.append(3, b"three").unwrap();
        drop(wal);
        let full = std::fs::read(&path).unwrap();

        // A flipped payload bit in the second record: only the first counts,
        // and since an intact record follows, opening refuses the log.
        let mut damaged = full.clone();
        damaged[2 * HEADER_BYTES + 3 + 1] ^= 0x10;
        assert_eq!(parse(&damaged).0.len(), 1);
        std::fs::write(&path, &damaged).unwrap();
        assert!(matches!(Wal::open(&path), Err(StorageError::Corrupt(_))));
        // Damage in the last record is a torn append: dropped.
        let mut torn = full.clone();
        let last = torn.len() - 1;
        torn[last] ^= 0x10;
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(reopen(&path).1.len(), 2);

        // A record whose sequence does not follow is stale data.
        let mut stale = full[..HEADER_BYTES + 3].to_vec();
        stale.extend_from_slice(&full[HEADER_BYTES + 3 + HEADER_BYTES + 3..]);
        assert_eq!(parse(&stale).0.len(), 1);

        // An absurd length is damage, not an allocation.
        let mut huge = full;
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&huge), (vec![], 0));
    }

    #[test]
    fn clear_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE);
        let (mut wal, _) = reopen(&path);
        wal.append(1, b"one").unwrap();
        wal.clear().unwrap();
        assert_eq!(wal.len(), 0);
        wal.append(2, b"two").unwrap();
        drop(wal);
        let records = reopen(&path).1;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].sequence, 2);
    }
}
