struct Counter {
    n: u64,
}

#[nodus::actor]
impl Counter {
    #[call]
    pub fn bump(&mut self) {
        self.n += 1;
    }

    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.n)
    }
}

fn main() {}
