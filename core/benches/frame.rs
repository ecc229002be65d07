//! Decode + encode throughput of the frame codec for typical frame sizes.

use bytes::BytesMut;
use canhazdb_core::frame::{Frame, FrameDecoder};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn frame_with_payload(bytes: usize) -> Frame {
    // A JSON-looking payload of the wanted size.
    let filler = "x".repeat(bytes.saturating_sub(20));
    let payload = format!(r#"{{"10":"t","20":"{filler}"}}"#);
    Frame::new(1234, 33, payload.into_bytes())
}

fn decode_and_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode_encode");
    for (name, size) in [("100B", 100), ("10KB", 10 * 1024)] {
        const FRAMES: usize = 256;
        let frame = frame_with_payload(size);
        let mut wire = BytesMut::new();
        for _ in 0..FRAMES {
            frame.encode(&mut wire);
        }
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || wire.clone(),
                |mut input| {
                    let mut decoder = FrameDecoder::default();
                    let mut output = BytesMut::with_capacity(input.len());
                    while let Some(frame) = decoder.decode(&mut input).unwrap() {
                        frame.encode(&mut output);
                    }
                    output
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, decode_and_encode);
criterion_main!(benches);
