//! Live C objects. Every handle and descriptor is a heap object registered here under its
//! address; the address is what the caller holds.
//!
//! Export bodies never dereference a caller's object pointer: they look the address up, which
//! yields a shared reference-counted object or `miopenStatusBadParm`. So a destroyed, foreign
//! or garbage pointer is detected instead of being undefined behaviour, and an object stays
//! alive for the duration of a call even if another thread destroys it meanwhile. Destroyed
//! objects are kept in a small quarantine so their addresses are not handed out again at once,
//! which makes a use-after-destroy detectable even after new objects were created.

use super::status::{Fail, FfiResult};
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// A registered object: a type tag for debuggers and the state behind a lock.
pub struct Object<T> {
    magic: u64,
    state: Mutex<T>,
}

/// The tag every [`Object`] starts with ("HIPCONV\0" little-endian).
pub const MAGIC: u64 = u64::from_le_bytes(*b"HIPCONV\0");

/// How many destroyed objects keep their address reserved.
const QUARANTINE: usize = 256;

type Shared = Arc<dyn Any + Send + Sync>;

struct Registry {
    live: HashMap<usize, Shared>,
    quarantine: VecDeque<Shared>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    lock(REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            live: HashMap::new(),
            quarantine: VecDeque::new(),
        })
    }))
}

/// Locks a mutex, ignoring poisoning: a panic inside an export is already reported as a status,
/// and the state it guards stays structurally valid.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> std::fmt::Debug for Object<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Object<{}>@{:p}", std::any::type_name::<T>(), self)
    }
}

impl<T> Object<T> {
    /// Locks the object's state.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.state)
    }
}

/// Registers `state` as a new object and returns its address.
pub fn create<T: Send + 'static>(state: T) -> *mut T {
    let obj: Arc<Object<T>> = Arc::new(Object {
        magic: MAGIC,
        state: Mutex::new(state),
    });
    let addr = Arc::as_ptr(&obj) as usize;
    registry().live.insert(addr, obj);
    addr as *mut T
}

/// A new object that is not registered (for state keyed by another library's pointers).
pub fn detached<T: Send + 'static>(state: T) -> Arc<Object<T>> {
    Arc::new(Object {
        magic: MAGIC,
        state: Mutex::new(state),
    })
}

/// The live object of type `T` at `ptr`. NULL, unknown and destroyed addresses, and objects
/// of another type, are `miopenStatusBadParm` naming `what`.
pub fn get<T: Send + 'static>(ptr: *const T, what: &str) -> FfiResult<Arc<Object<T>>> {
    if ptr.is_null() {
        return Err(Fail::bad(format!("{what} is NULL")));
    }
    let shared = registry()
        .live
        .get(&(ptr as usize))
        .cloned()
        .ok_or_else(|| Fail::bad(format!("{what} {ptr:p} is not a live object (destroyed?)")))?;
    let obj = shared
        .downcast::<Object<T>>()
        .map_err(|_| Fail::bad(format!("{what} {ptr:p} is an object of another kind")))?;
    debug_assert_eq!(obj.magic, MAGIC);
    Ok(obj)
}

/// Unregisters the object of type `T` at `ptr` and returns it; NULL is `Ok(None)`.
pub fn destroy<T: Send + 'static>(ptr: *const T, what: &str) -> FfiResult<Option<Arc<Object<T>>>> {
    if ptr.is_null() {
        return Ok(None);
    }
    let obj = get(ptr, what)?;
    let mut reg = registry();
    if let Some(shared) = reg.live.remove(&(ptr as usize)) {
        reg.quarantine.push_back(shared);
        if reg.quarantine.len() > QUARANTINE {
            reg.quarantine.pop_front();
        }
    }
    Ok(Some(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_detect_destroyed_and_foreign_objects() {
        let a = create(5u32);
        assert_eq!(*get(a, "a").unwrap().lock(), 5);
        assert_eq!(get(a as *const u64, "a").unwrap_err().status.0, 3);
        destroy(a, "a").unwrap();
        assert_eq!(get(a, "a").unwrap_err().status.0, 3);
        assert!(destroy(a, "a").is_err());
        assert!(destroy(std::ptr::null::<u32>(), "a").unwrap().is_none());
        assert!(get(std::ptr::null::<u32>(), "a").is_err());
        let stack = 7u32;
        assert!(get(&stack as *const u32, "a").is_err());
        // The address stays reserved: new objects never reuse it while quarantined.
        let fresh: Vec<_> = (0..32).map(|i| create(i as u32)).collect();
        assert!(!fresh.contains(&a));
        for p in fresh {
            destroy(p, "p").unwrap();
        }
    }
}
