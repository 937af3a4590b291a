struct Counter;

// `name` is the wire name of a remote actor's messages: without `remote` it means nothing.
#[nodus::actor(name = "Counter")]
impl Counter {}

struct Gauge;

#[nodus::actor(remote, name = "")]
impl Gauge {}

fn main() {}
