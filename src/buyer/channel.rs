//! The buyer's control channel to the harness: one byte per message each way.

use super::BuyerError;
use crate::protocol::{msg, CHANNEL_FD, REPLY_FD};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// The control channel to the harness: a Unix socket on standard input, or (a
/// controlled session's buyer) a pipe on standard input and one on [`REPLY_FD`].
pub(super) struct Channel {
    rx: Box<dyn Read>,
    tx: Box<dyn Write>,
}

fn is_kind(fd: BorrowedFd<'_>, kind: nix::sys::stat::SFlag) -> bool {
    nix::sys::stat::fstat(fd).is_ok_and(|st| {
        nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
            == kind
    })
}

fn is_pipe(fd: BorrowedFd<'_>) -> bool {
    is_kind(fd, nix::sys::stat::SFlag::S_IFIFO)
}

/// The copy of the control socket at [`CHANNEL_FD`], when the harness put one there
/// (a buyer inside a lock command) and it is still a socket.
fn channel_copy() -> Option<OwnedFd> {
    // SAFETY: F_GETFD reads a descriptor's flags and touches no memory.
    if unsafe { libc::fcntl(CHANNEL_FD, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: CHANNEL_FD is open (checked just above) and only borrowed here.
    let fd = unsafe { BorrowedFd::borrow_raw(CHANNEL_FD) };
    if !is_kind(fd, nix::sys::stat::SFlag::S_IFSOCK) {
        return None;
    }
    fd.try_clone_to_owned().ok()
}

impl Channel {
    pub(super) fn from_stdin() -> Result<Channel, BuyerError> {
        if let Some(fd) = channel_copy() {
            return Channel::socket(fd);
        }
        let fd = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| BuyerError::Io("duplicating the control channel", e))?;
        if is_pipe(fd.as_fd()) {
            // SAFETY: F_GETFD reads a descriptor's flags and touches no memory.
            if unsafe { libc::fcntl(REPLY_FD, libc::F_GETFD) } < 0 {
                return Err(BuyerError::Control(format!(
                    "standard input is a pipe but descriptor {REPLY_FD} is not open"
                )));
            }
            // SAFETY: REPLY_FD is open (checked just above) and is only borrowed here, to
            // look at it.
            let reply = unsafe { BorrowedFd::borrow_raw(REPLY_FD) };
            if !is_pipe(reply) {
                return Err(BuyerError::Control(format!(
                    "standard input is a pipe but descriptor {REPLY_FD} is not"
                )));
            }
            // SAFETY: descriptor REPLY_FD is open (checked above) and the harness put it
            // there for this process alone; nothing else here owns or closes it.
            let tx = unsafe { OwnedFd::from_raw_fd(REPLY_FD) };
            return Ok(Channel {
                rx: Box::new(File::from(fd)),
                tx: Box::new(File::from(tx)),
            });
        }
        if !is_kind(fd.as_fd(), nix::sys::stat::SFlag::S_IFSOCK) {
            return Err(BuyerError::Control(format!(
                "neither standard input nor descriptor {CHANNEL_FD} is the harness's socket: \
                 the lock command must pass one of them on to the command it runs"
            )));
        }
        Channel::socket(fd)
    }

    fn socket(fd: OwnedFd) -> Result<Channel, BuyerError> {
        let sock = UnixStream::from(fd);
        let tx = sock
            .try_clone()
            .map_err(|e| BuyerError::Io("duplicating the control channel", e))?;
        Ok(Channel {
            rx: Box::new(sock),
            tx: Box::new(tx),
        })
    }

    pub(super) fn send(&mut self, byte: u8) -> Result<(), BuyerError> {
        self.tx
            .write_all(&[byte])
            .map_err(|e| BuyerError::Control(format!("send: {e}")))
    }

    /// Waits for `go` (or, at a controlled `acquire`, `go-lock`); returns which came.
    pub(super) fn wait_go(&mut self) -> Result<u8, BuyerError> {
        let mut b = [0u8; 1];
        match self.rx.read(&mut b) {
            Ok(1) if b[0] == msg::GO || b[0] == msg::GO_LOCK => Ok(b[0]),
            Ok(0) => Err(BuyerError::Control("the harness went away".into())),
            Ok(_) => Err(BuyerError::Control(format!(
                "unexpected byte {:?}",
                b[0] as char
            ))),
            Err(e) => Err(BuyerError::Control(format!("receive: {e}"))),
        }
    }

    pub(super) fn ask(&mut self, byte: u8) -> Result<u8, BuyerError> {
        self.send(byte)?;
        self.wait_go()
    }

    /// A free-running pool's orders for the round that just began.
    pub(super) fn orders(&mut self) -> Result<crate::protocol::RoundOrders, BuyerError> {
        let mut b = [0u8; crate::protocol::RoundOrders::LEN];
        self.rx
            .read_exact(&mut b)
            .map_err(|e| BuyerError::Control(format!("reading the round's orders: {e}")))?;
        crate::protocol::RoundOrders::decode(&b).map_err(BuyerError::Control)
    }

    /// Like `ask`, but a closed channel is a clean `false`: the harness is done with us.
    pub(super) fn ask_or_done(&mut self, byte: u8) -> Result<bool, BuyerError> {
        if self.tx.write_all(&[byte]).is_err() {
            return Ok(false);
        }
        let mut b = [0u8; 1];
        match self.rx.read(&mut b) {
            Ok(1) if b[0] == msg::GO => Ok(true),
            Ok(0) | Err(_) => Ok(false),
            Ok(_) => Err(BuyerError::Control(format!(
                "unexpected byte {:?}",
                b[0] as char
            ))),
        }
    }
}
