//! The TCP transport: a byte stream of frames (plain or inside TLS).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use canhazdb_core::frame::{FrameDecoder, FrameError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::accept::BoxStream;
use super::session::Session;
use crate::node::connection::Role;
use crate::node::Node;

/// Serves one connection's byte stream (TCP, or TLS over TCP) until the
/// peer closes it, it breaks the framing, or the server shuts down.
pub async fn serve(node: Arc<Node>, stream: BoxStream, role: Role, close: CancellationToken) {
    let (mut reader, writer) = tokio::io::split(stream);
    let (session, outgoing) = Session::open(node.clone(), role, close.clone());
    let writer_task = tokio::spawn(write_frames(writer, outgoing, close.clone()));

    let mut decoder = FrameDecoder::new(node.max_frame_bytes);
    let mut buffer = BytesMut::with_capacity(8 * 1024);
    'read: loop {
        let read = tokio::select! {
            _ = close.cancelled() => break,
            read = reader.read_buf(&mut buffer) => read,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => session.dispatch(frame).await,
                Ok(None) => break,
                Err(error @ FrameError::MissingCommand { id }) => session.reject(&error, id).await,
                Err(error) => {
                    // An over-long frame: answer it, then close, since the
                    // stream cannot be resynchronised.
                    let id = u16::from_le_bytes([buffer[0], buffer[1]]);
                    tracing::warn!(connection = session.connection(), %error, "closing connection");
                    session.reject(&error, id).await;
                    break 'read;
                }
            }
        }
        if buffer.capacity() > 1024 * 1024 && buffer.len() < 64 * 1024 {
            // Give back the memory a large frame needed.
            buffer = BytesMut::from(&buffer[..]);
        }
    }
    session.close().await;
    // The writer drains what is queued (replies of requests still running
    // included) and ends once every sender is gone.
    let _ = writer_task.await;
}

async fn write_frames(
    writer: WriteHalf<BoxStream>,
    mut outgoing: mpsc::Receiver<Bytes>,
    close: CancellationToken,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(frame) = outgoing.recv().await {
        if writer.write_all(&frame).await.is_err() {
            close.cancel();
            return;
        }
        // Coalesce whatever else is ready into the same write.
        while let Ok(frame) = outgoing.try_recv() {
            if writer.write_all(&frame).await.is_err() {
                close.cancel();
                return;
            }
        }
        if writer.flush().await.is_err() {
            close.cancel();
            return;
        }
    }
    let _ = writer.shutdown().await;
}
