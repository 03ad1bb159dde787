//! User shards: which users' profiles a replica keeps.
//!
//! Profiles are the one part of the state that grows with users (~2.8 KB
//! each at 64 dimensions), so a deployment past one machine's memory splits
//! users into `count` shards by a stable hash of the user id and runs
//! rankers per shard. Product-, content- and merchant-level counters still
//! come from the whole stream; the signals that are learned *through*
//! profiles (co-engagement pairs and repurchase intervals) come from the
//! shard's own users, a uniform `1/count` sample of them, weighted by
//! `count` so their magnitudes match an unsharded replica's
//! (ARCHITECTURE.md, "Deployment").

use crate::error::{Error, ErrorKind, Result};
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// The most user shards a layout may have.
pub const MAX_USER_SHARDS: u32 = 1 << 16;

/// Shard `index` of `count`: the users `u` with
/// [`UserShard::of`]`(u, count) == index`.
///
/// ```
/// use omnifeed::signals::UserShard;
/// use omnifeed::UserId;
/// let shard = UserShard::new(1, 4)?;
/// let user = UserId(12_345);
/// // A router sends the user's requests to a replica of this shard:
/// assert_eq!(shard.owns(user), UserShard::of(user, 4) == 1);
/// # Ok::<(), omnifeed::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserShard {
    index: u32,
    count: u32,
}

impl UserShard {
    /// Shard `index` of `count`.
    ///
    /// Errors: `count` outside `1..=`[`MAX_USER_SHARDS`] or `index ≥ count`
    /// ([`ErrorKind::InvalidConfig`]).
    pub fn new(index: u32, count: u32) -> Result<UserShard> {
        if !(1..=MAX_USER_SHARDS).contains(&count) {
            return Err(Error::invalid_config(
                "user_shard.count",
                format!("expected 1..={MAX_USER_SHARDS}, got {count}"),
            ));
        }
        if index >= count {
            return Err(Error::invalid_config(
                "user_shard.index",
                format!("expected 0..{count}, got {index}"),
            ));
        }
        Ok(UserShard { index, count })
    }

    /// The shard of `user` among `count` (0 when `count` is 0 or 1): the
    /// SplitMix64 hash of the id modulo `count`. This function is part of
    /// the routing contract and does not change between versions.
    pub fn of(user: UserId, count: u32) -> u32 {
        if count <= 1 {
            return 0;
        }
        (crate::ids::splitmix64(user.0) % u64::from(count)) as u32
    }

    /// This shard's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The number of shards in the layout.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether `user` belongs to this shard.
    pub fn owns(&self, user: UserId) -> bool {
        Self::of(user, self.count) == self.index
    }

    /// `Ok` if `user` belongs to this shard, else
    /// [`ErrorKind::WrongShard`] naming the owner.
    pub fn check(&self, user: UserId) -> Result<()> {
        if self.owns(user) {
            return Ok(());
        }
        Err(Error::new(ErrorKind::WrongShard {
            user: user.0,
            owner: Self::of(user, self.count),
            shard: self.index,
            shards: self.count,
        }))
    }

    /// A name for the layout's files: `shard-<index>-of-<count>`.
    pub fn name(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert!(UserShard::new(0, 0).is_err());
        assert!(UserShard::new(2, 2).is_err());
        assert!(UserShard::new(0, MAX_USER_SHARDS + 1).is_err());
        assert!(UserShard::new(MAX_USER_SHARDS - 1, MAX_USER_SHARDS).is_ok());
    }

    #[test]
    fn every_user_has_exactly_one_owner_and_shards_are_balanced() {
        let count = 4;
        let shards: Vec<UserShard> =
            (0..count).map(|i| UserShard::new(i, count).unwrap()).collect();
        let mut sizes = [0usize; 4];
        for u in 0..40_000u64 {
            let owners: Vec<u32> =
                shards.iter().filter(|s| s.owns(UserId(u))).map(|s| s.index()).collect();
            assert_eq!(owners, vec![UserShard::of(UserId(u), count)]);
            sizes[owners[0] as usize] += 1;
        }
        // Sequential ids spread evenly: every shard within 3% of 10,000.
        assert!(sizes.iter().all(|&n| (9_700..=10_300).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn a_foreign_user_is_a_typed_error_naming_the_owner() {
        let shard = UserShard::new(0, 3).unwrap();
        let user = (0..).map(UserId).find(|&u| UserShard::of(u, 3) == 2).unwrap();
        match shard.check(user).unwrap_err().into_kind() {
            ErrorKind::WrongShard { user: u, owner, shard, shards } => {
                assert_eq!((u, owner, shard, shards), (user.0, 2, 0, 3));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(UserShard::of(user, 1), 0);
    }
}
