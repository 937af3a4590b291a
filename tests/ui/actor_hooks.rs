use nodus::{Context, Info};

#[derive(Clone)]
struct Room;

#[nodus::actor]
impl Room {
    #[info]
    fn info(&mut self, ctx: &mut Context) {}

    #[init]
    fn init(&mut self, ctx: &mut Context, extra: u32) {}

    #[info]
    fn more(&mut self, info: Info) -> bool {
        true
    }
}

fn main() {}
