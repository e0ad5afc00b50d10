//! The local Kafka broker works with rdkafka: create a topic, produce, consume everything back.

use std::time::Duration;

use impressions_tests::{Stack, unique};
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

#[tokio::test]
async fn create_topic_produce_and_consume() {
    let stack = Stack::get();
    let topic = unique("smoke");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    let res = admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "create topic: {res:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let n = 300;
    let sends = (0..n).map(|i| {
        let key = format!("k{i}");
        let payload = format!("event-{i}");
        let producer = &producer;
        let topic = &topic;
        async move {
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
        }
    });
    for r in futures::future::join_all(sends).await {
        r.expect("delivered");
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", unique("smoke-group"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < n {
        let msg = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("consumed only {} of {n} within 60s", seen.len()))
            .unwrap();
        seen.insert(String::from_utf8(msg.payload().unwrap().to_vec()).unwrap());
    }
    assert_eq!(seen.len(), n);
    assert!(seen.contains("event-0") && seen.contains(&format!("event-{}", n - 1)));
}
