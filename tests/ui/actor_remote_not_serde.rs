struct Point {
    x: i64,
}

struct Plotter;

#[nodus::actor(remote)]
impl Plotter {
    pub fn plot(&mut self, p: Point) {
        let _ = p.x;
    }
}

#[nodus::actor(remote = true)]
impl Plotter {}

fn main() {}
