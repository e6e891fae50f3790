//! Service discovery: two instances of a `greeter` service register under `/demo/services`
//! (Curator's curator-x-discovery layout), and a client finds them through a provider and
//! calls them round robin, printing which one it picked.
//!
//! ```text
//! cargo run --example discovery                 # 6 calls
//! cargo run --example discovery -- --calls 10
//! ```
//!
//! A Java service that registers with Curator's `ServiceDiscovery` under the same base path
//! (with a `String` payload) is found and called too; the instances registered here are found
//! by Java clients.

mod support;

use std::time::Duration;

use support::{arg, zookeeper, BoxError};
use zk_recipes::discovery::{ServiceDiscovery, ServiceInstance, UriSpec};
use zk_recipes::Client;

const BASE: &str = "/demo/services";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let calls = arg("--calls", 6) as usize;
    let (connect, _server) = zookeeper().await?;

    // The service side: two instances, each on a session of its own, as two processes would.
    let mut servers = Vec::new();
    for (id, port) in [("greeter-1", 8081), ("greeter-2", 8082)] {
        let client = Client::builder(&connect)
            .session_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        let discovery = ServiceDiscovery::<String>::builder(&client, BASE).build()?;
        let instance = ServiceInstance::builder("greeter")
            .id(id)
            .address("127.0.0.1")
            .port(port)
            .uri_spec(UriSpec::parse("{scheme}://{address}:{port}/greet")?)
            .payload(format!("Hello from {id}"))
            .build()?;
        discovery.register(&instance).await?;
        println!("registered {id} at {}", instance.build_uri());
        servers.push((client, discovery));
    }

    // The client side: a provider of the service, round robin (the default strategy).
    let client = Client::builder(&connect).connect().await?;
    let discovery = ServiceDiscovery::<String>::builder(&client, BASE).build()?;
    let provider = discovery.service_provider("greeter").build()?;
    provider.start().await?;
    println!(
        "{} instances of greeter: {:?}",
        provider.all_instances().len(),
        provider
            .all_instances()
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>()
    );
    for call in 1..=calls {
        match provider.get_instance() {
            Some(instance) => println!(
                "call {call}: picked {} ({}): {}",
                instance.id,
                instance.build_uri(),
                instance.payload.as_deref().unwrap_or("")
            ),
            None => println!("call {call}: no instance"),
        }
    }

    provider.close().await;
    client.close().await;
    for (client, discovery) in servers {
        discovery.close().await?;
        client.close().await;
    }
    println!("Done.");
    Ok(())
}
