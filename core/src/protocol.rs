//! The protocol's numbers (spec section 2) as typed enums.
//!
//! Every byte that can arrive on the wire is representable: a command byte the
//! server does not know becomes [`Code::Unknown`] instead of a panic, so the
//! server can answer it with STATUS_NOT_FOUND.

use std::fmt;

/// The correlation id of frames the server pushes on its own (NOTIFY, READY).
pub const PUSH_ID: u16 = 2;
/// The first correlation id a client may use for a request.
pub const FIRST_REQUEST_ID: u16 = 3;
/// The last correlation id a client may use for a request.
pub const LAST_REQUEST_ID: u16 = u16::MAX;

macro_rules! numbered_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal => $label:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vmeta])* $variant = $value,)+ }

        impl $name {
            /// Every value of this enum, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The enum value for a wire number, if it is one.
            pub fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The number on the wire.
            pub fn as_u8(self) -> u8 {
                self as u8
            }

            /// The spec's name, e.g. `STATUS_OK`.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

numbered_enum!(
    /// A request (or pushed frame) command byte.
    Command {
        Info = 30 => "INFO",
        Count = 31 => "COUNT",
        Get = 32 => "GET",
        Post = 33 => "POST",
        Put = 34 => "PUT",
        Patch = 35 => "PATCH",
        Delete = 36 => "DELETE",
        Notify = 50 => "NOTIFY",
        NotifyOn = 51 => "NOTIFY_ON",
        NotifyOff = 52 => "NOTIFY_OFF",
        Lock = 60 => "LOCK",
        Unlock = 61 => "UNLOCK",
        Ready = 160 => "READY",
    }
);

numbered_enum!(
    /// A reply status byte.
    Status {
        Ok = 120 => "STATUS_OK",
        BadRequest = 121 => "STATUS_BAD_REQUEST",
        NotFound = 122 => "STATUS_NOT_FOUND",
        Created = 123 => "STATUS_CREATED",
        ServerError = 124 => "STATUS_SERVER_ERROR",
        ServerUnhealthy = 125 => "STATUS_SERVER_UNHEALTHY",
        ServerClosed = 126 => "STATUS_SERVER_CLOSED",
        Locked = 127 => "STATUS_LOCKED",
    }
);

impl Status {
    /// OK and CREATED are successes; every other status is a failure.
    pub fn is_success(self) -> bool {
        matches!(self, Status::Ok | Status::Created)
    }
}

numbered_enum!(
    /// A payload key. On the wire it is the decimal string of the number, e.g. `"10"`.
    Key {
        Internal = 2 => "INTERNAL",
        System = 3 => "SYSTEM",
        CollectionId = 10 => "COLLECTION_ID",
        ResourceId = 11 => "RESOURCE_ID",
        Data = 20 => "DATA",
        ReplicatedNodes = 21 => "REPLICATED_NODES",
        Query = 40 => "QUERY",
        Fields = 41 => "FIELDS",
        Limit = 42 => "LIMIT",
        Order = 43 => "ORDER",
        NotifyPath = 53 => "NOTIFY_PATH",
        LockId = 62 => "LOCK_ID",
        LockStrategy = 63 => "LOCK_STRATEGY",
        LockKey = 66 => "LOCK_KEY",
        LockOrigin = 67 => "LOCK_ORIGIN",
        Command = 70 => "COMMAND",
        Status = 71 => "STATUS",
        Error = 100 => "ERROR",
    }
);

impl Key {
    /// The key as it appears in a JSON payload (`"10"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Key::Internal => "2",
            Key::System => "3",
            Key::CollectionId => "10",
            Key::ResourceId => "11",
            Key::Data => "20",
            Key::ReplicatedNodes => "21",
            Key::Query => "40",
            Key::Fields => "41",
            Key::Limit => "42",
            Key::Order => "43",
            Key::NotifyPath => "53",
            Key::LockId => "62",
            Key::LockStrategy => "63",
            Key::LockKey => "66",
            Key::LockOrigin => "67",
            Key::Command => "70",
            Key::Status => "71",
            Key::Error => "100",
        }
    }
}

/// What a write does when its collection is locked by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockStrategy {
    /// Fail at once with STATUS_LOCKED (wire value 64).
    Fail,
    /// Wait until the lock is released (wire value 65, the default).
    #[default]
    Wait,
}

impl LockStrategy {
    /// The wire value (LOCK_STRATEGY_FAIL = 64, LOCK_STRATEGY_WAIT = 65).
    pub fn as_u8(self) -> u8 {
        match self {
            LockStrategy::Fail => 64,
            LockStrategy::Wait => 65,
        }
    }

    /// The strategy for a wire value.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            64 => Some(LockStrategy::Fail),
            65 => Some(LockStrategy::Wait),
            _ => None,
        }
    }
}

/// The meaning of a frame's command byte: a request command, a reply status,
/// or a byte this implementation does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Command(Command),
    Status(Status),
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(byte: u8) -> Self {
        if let Some(command) = Command::from_u8(byte) {
            Code::Command(command)
        } else if let Some(status) = Status::from_u8(byte) {
            Code::Status(status)
        } else {
            Code::Unknown(byte)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_spec() {
        assert_eq!(Command::Info.as_u8(), 30);
        assert_eq!(Command::Delete.as_u8(), 36);
        assert_eq!(Command::Ready.as_u8(), 160);
        assert_eq!(Status::Ok.as_u8(), 120);
        assert_eq!(Status::Locked.as_u8(), 127);
        assert_eq!(Key::Error.as_str(), "100");
        assert_eq!(LockStrategy::Fail.as_u8(), 64);
        assert_eq!(LockStrategy::default(), LockStrategy::Wait);
    }

    #[test]
    fn key_strings_are_the_decimal_numbers() {
        for key in Key::ALL {
            assert_eq!(key.as_str(), key.as_u8().to_string(), "{key}");
        }
    }

    #[test]
    fn every_byte_is_representable_and_round_trips() {
        for byte in 0..=u8::MAX {
            match Code::from(byte) {
                Code::Command(command) => assert_eq!(command.as_u8(), byte),
                Code::Status(status) => assert_eq!(status.as_u8(), byte),
                Code::Unknown(unknown) => assert_eq!(unknown, byte),
            }
        }
        assert_eq!(Code::from(99), Code::Unknown(99));
    }

    #[test]
    fn only_ok_and_created_are_successes() {
        let successes: Vec<_> = Status::ALL.iter().filter(|s| s.is_success()).collect();
        assert_eq!(successes, vec![&Status::Ok, &Status::Created]);
    }
}
