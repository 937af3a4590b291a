struct Log {
    lines: Vec<String>,
}

#[nodus::actor]
impl Log {
    pub fn push<T: ToString>(&mut self, line: T) {
        self.lines.push(line.to_string());
    }
}

fn main() {}
