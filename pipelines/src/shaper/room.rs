//! What each shaping class can still take on each port, as the worker last saw its
//! shapers: the budget a lossless producer (the proxy's TCP connections) spends before
//! handing segments over, so the shaper never has to drop them. Ports and classes
//! without an entry are unlimited.

/// Room per (port, class): items and bytes.
#[derive(Debug, Default, Clone)]
pub struct ShapingRoom {
    ports: Vec<Vec<(usize, u64)>>,
}

impl ShapingRoom {
    /// Forgets every entry: everything unlimited.
    pub fn clear(&mut self) {
        for p in &mut self.ports {
            p.clear();
        }
    }

    /// Sets the room of `class` on `port`.
    pub fn set(&mut self, port: u16, class: u16, items: usize, bytes: u64) {
        let (port, class) = (port as usize, class as usize);
        if self.ports.len() <= port {
            self.ports.resize_with(port + 1, Vec::new);
        }
        let p = &mut self.ports[port];
        if p.len() <= class {
            p.resize(class + 1, (usize::MAX, u64::MAX));
        }
        p[class] = (items, bytes);
    }

    /// True when `class` on `port` can take an item of `len` bytes.
    pub fn has_room(&self, port: u16, class: u16, len: usize) -> bool {
        match self.entry(port, class) {
            Some((items, bytes)) => items > 0 && bytes >= len as u64,
            None => true,
        }
    }

    /// Spends room for an item of `len` bytes.
    pub fn take(&mut self, port: u16, class: u16, len: usize) {
        if let Some(e) = self
            .ports
            .get_mut(port as usize)
            .and_then(|p| p.get_mut(class as usize))
        {
            e.0 = e.0.saturating_sub(1);
            e.1 = e.1.saturating_sub(len as u64);
        }
    }

    fn entry(&self, port: u16, class: u16) -> Option<(usize, u64)> {
        self.ports
            .get(port as usize)
            .and_then(|p| p.get(class as usize))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_spent_and_unknown_entries_are_unlimited() {
        let mut r = ShapingRoom::default();
        assert!(r.has_room(0, 3, 1500));
        r.set(1, 2, 2, 3000);
        assert!(r.has_room(1, 2, 1500));
        r.take(1, 2, 1500);
        assert!(r.has_room(1, 2, 1500));
        r.take(1, 2, 1500);
        assert!(!r.has_room(1, 2, 60), "no items left");
        assert!(r.has_room(1, 1, 1500), "another class is unlimited");
        r.set(0, 0, 10, 100);
        assert!(!r.has_room(0, 0, 101), "bytes run out first");
        r.clear();
        assert!(r.has_room(1, 2, 1500));
    }
}
