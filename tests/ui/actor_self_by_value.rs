struct Counter {
    n: u64,
}

#[nodus::actor]
impl Counter {
    pub fn take(self) -> u64 {
        self.n
    }
}

fn main() {}
