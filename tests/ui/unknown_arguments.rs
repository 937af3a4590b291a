struct Counter;

#[nodus::actor(message = CounterMessage)]
impl Counter {}

struct Chat;

#[nodus::remote_module("Chat", client = ChatClient)]
impl Chat {}

#[nodus::test(tag = ["distributed"])]
async fn tagged() {}

fn main() {}
