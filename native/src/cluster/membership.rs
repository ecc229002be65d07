//! The nodes this node knows: learned from `--join` and from what other
//! nodes tell it, persisted in the data directory so a restarted node rejoins
//! them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use canhazdb_core::internal::Member;

/// File in the data directory holding the known members.
const MEMBERS_FILE: &str = "members.json";

/// Known members by name (this node included), plus join addresses whose
/// node name is not known yet.
#[derive(Debug)]
pub struct Membership {
    me: Member,
    members: BTreeMap<String, Member>,
    unresolved_joins: Vec<String>,
    path: PathBuf,
}

impl Membership {
    /// Loads the persisted members and adds `joins` (addresses) to dial.
    pub fn load(data_dir: &Path, me: Member, joins: &[String]) -> std::io::Result<Membership> {
        let path = data_dir.join(MEMBERS_FILE);
        let mut members: BTreeMap<String, Member> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<Member>>(&bytes)
                .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?
                .into_iter()
                .map(|member| (member.name.clone(), member))
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        members.insert(me.name.clone(), me.clone());
        let mut membership = Membership {
            me,
            members,
            unresolved_joins: Vec::new(),
            path,
        };
        for address in joins {
            let known = membership.members.values().any(|m| &m.address == address);
            if !known && !membership.unresolved_joins.contains(address) {
                membership.unresolved_joins.push(address.clone());
            }
        }
        membership.persist()?;
        Ok(membership)
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Every known member, this node included, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// Known members other than this node.
    pub fn peers(&self) -> Vec<Member> {
        self.members
            .values()
            .filter(|m| m.name != self.me.name)
            .cloned()
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Join addresses still to be dialled to learn their node's name.
    pub fn unresolved_joins(&self) -> Vec<String> {
        self.unresolved_joins.clone()
    }

    /// Adds or updates members; returns whether anything changed (and then
    /// persists). A join address resolved by a member's address is settled.
    pub fn merge(&mut self, members: impl IntoIterator<Item = Member>) -> std::io::Result<bool> {
        let mut changed = false;
        for member in members {
            if member.name == self.me.name {
                continue;
            }
            self.unresolved_joins.retain(|address| address != &member.address);
            if self.members.get(&member.name) != Some(&member) {
                self.members.insert(member.name.clone(), member);
                changed = true;
            }
        }
        if changed {
            self.persist()?;
        }
        Ok(changed)
    }

    /// A join address turned out to be this node (v8 users list every node,
    /// themselves included).
    pub fn resolve_join_to_self(&mut self, address: &str) {
        self.unresolved_joins.retain(|join| join != address);
    }

    fn persist(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.members()).map_err(std::io::Error::other)?;
        // Write then rename, so a crash never leaves a torn file.
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, bytes)?;
        std::fs::File::open(&temporary)?.sync_all()?;
        std::fs::rename(&temporary, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, port: u16) -> Member {
        Member {
            name: name.into(),
            address: format!("127.0.0.1:{port}"),
        }
    }

    #[test]
    fn members_persist_and_joins_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let joins = vec!["127.0.0.1:2".to_owned(), "127.0.0.1:1".to_owned()];
        let mut membership = Membership::load(dir.path(), member("a", 1), &joins).unwrap();
        assert_eq!(membership.unresolved_joins(), vec!["127.0.0.1:2"]);
        assert!(membership.merge([member("b", 2)]).unwrap());
        assert!(!membership.merge([member("b", 2), member("a", 1)]).unwrap());
        assert!(membership.unresolved_joins().is_empty());
        let reloaded = Membership::load(dir.path(), member("a", 1), &[]).unwrap();
        assert_eq!(reloaded.names(), vec!["a", "b"]);
        assert_eq!(reloaded.peers(), vec![member("b", 2)]);
    }
}
