//! Against the shared RabbitMQ: every test uses its own exchange and queues and deletes them.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Recorder, Running, admin, eventually, fresh_config, json_messages, message, remove};
use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use lottery_activity::{EventPublisher, Handled, PublishError, Topic};
use lottery_mq::AmqpPublisher;
use lottery_testkit::{Service, TcpProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at 127.0.0.1:5672 (LOTTERY_TEST_AMQP_URL)"]
async fn five_thousand_confirmed_messages_are_each_consumed_once() {
    let config = fresh_config("bulk").await;
    let admin = admin(&config).await;
    let publisher = AmqpPublisher::new(config.clone()).expect("valid config");
    let messages = json_messages(Topic::AwardInvoice, "bulk", 5_000);

    let started = Instant::now();
    let results = publisher.publish_all(&messages).await;
    let publish_time = started.elapsed();
    let published_ok = results.iter().filter(|r| r.is_ok()).count();
    let depth_after_publish = admin.queue_depth(Topic::AwardInvoice).await.expect("depth");

    let recorder = Recorder::accepting(Duration::ZERO);
    let started = Instant::now();
    let consumer = Running::start(&config, recorder.clone(), Topic::AwardInvoice);
    let all_in = eventually(Duration::from_secs(60), async || {
        recorder.done_count() >= 5_000
    })
    .await;
    let consume_time = started.elapsed();
    consumer.stop().await;
    publisher.close().await;
    let depth_at_end = admin.queue_depth(Topic::AwardInvoice).await.expect("depth");
    let dead = admin
        .dead_letter_depth(Topic::AwardInvoice)
        .await
        .expect("depth");
    remove(admin).await;
    println!("published 5000 in {publish_time:?}, consumed in {consume_time:?}");

    assert_eq!(
        published_ok,
        5_000,
        "every publish confirmed: {:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(depth_after_publish, 5_000);
    assert!(all_in, "only {} of 5000 handled", recorder.done_count());
    let counts = recorder.done_by_id();
    assert_eq!(counts.len(), 5_000);
    assert!(
        counts.values().all(|&n| n == 1),
        "a message was handled twice"
    );
    let expected: HashSet<_> = messages.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), expected);
    assert!(
        recorder
            .seen()
            .iter()
            .all(|m| m.topic == Topic::AwardInvoice && !m.redelivered)
    );
    assert_eq!(depth_at_end, 0);
    assert_eq!(dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at 127.0.0.1:5672 (LOTTERY_TEST_AMQP_URL)"]
async fn poison_goes_to_the_dead_letter_queue_without_blocking_the_rest() {
    let config = fresh_config("poison").await;
    let admin = admin(&config).await;
    let publisher = AmqpPublisher::new(config.clone()).expect("valid config");
    let mut batch = vec![message(Topic::AwardInvoice, "bad-json", "{not json")];
    batch.extend(json_messages(Topic::AwardInvoice, "good", 20));
    let results = publisher.publish_all(&batch).await;

    // A message without id cannot be deduplicated, so the transport sets it aside too.
    let raw = Connection::connect(&config.url, ConnectionProperties::default())
        .await
        .expect("raw connection");
    let channel = raw.create_channel().await.expect("channel");
    channel
        .basic_publish(
            config.exchange.as_str().into(),
            Topic::AwardInvoice.as_str().into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
        .expect("raw publish");
    let _ = raw.close(200, "done".into()).await;

    let recorder = Recorder::new(Duration::ZERO, |m, _| {
        match serde_json::from_str::<serde_json::Value>(&m.payload) {
            Ok(_) => Handled::Done,
            Err(e) => Handled::Poison(e.to_string()),
        }
    });
    let consumer = Running::start(&config, recorder.clone(), Topic::AwardInvoice);
    let good_done = eventually(Duration::from_secs(20), async || {
        recorder.done_count() >= 20
    })
    .await;
    let dead_seen = eventually(Duration::from_secs(10), async || {
        admin.dead_letter_depth(Topic::AwardInvoice).await.ok() == Some(2)
    })
    .await;
    consumer.stop().await;
    publisher.close().await;
    let depth = admin.queue_depth(Topic::AwardInvoice).await.expect("depth");
    let dead = admin
        .dead_letter_depth(Topic::AwardInvoice)
        .await
        .expect("depth");
    remove(admin).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(
        good_done,
        "good messages handled: {}",
        recorder.done_count()
    );
    assert!(dead_seen);
    assert_eq!(dead, 2, "the malformed one and the one without id");
    assert_eq!(depth, 0);
    // The handler saw the malformed one once (the id-less one never reached it).
    let seen = recorder.seen();
    assert_eq!(
        seen.iter().filter(|m| m.message_id == "bad-json").count(),
        1
    );
    assert_eq!(seen.len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at 127.0.0.1:5672 (LOTTERY_TEST_AMQP_URL)"]
async fn retried_message_is_redelivered_and_processed_once() {
    let config = fresh_config("retry").await;
    let admin = admin(&config).await;
    let publisher = AmqpPublisher::new(config.clone()).expect("valid config");
    let batch = json_messages(Topic::AwardInvoice, "retry", 3);
    let results = publisher.publish_all(&batch).await;

    let recorder = Recorder::new(Duration::ZERO, |m, before| {
        if m.message_id == "retry-1" && before == 0 {
            Handled::Retry("dependency down".into())
        } else {
            Handled::Done
        }
    });
    let consumer = Running::start(&config, recorder.clone(), Topic::AwardInvoice);
    let all_done = eventually(Duration::from_secs(20), async || recorder.done_count() >= 3).await;
    // Give a wrong extra redelivery the chance to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    consumer.stop().await;
    publisher.close().await;
    let depth = admin.queue_depth(Topic::AwardInvoice).await.expect("depth");
    remove(admin).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(all_done);
    let counts = recorder.done_by_id();
    assert_eq!(counts.get("retry-1"), Some(&1));
    assert_eq!(counts.len(), 3);
    let attempts: Vec<_> = recorder
        .seen()
        .into_iter()
        .filter(|m| m.message_id == "retry-1")
        .collect();
    assert_eq!(attempts.len(), 2);
    assert!(!attempts[0].redelivered);
    assert!(
        attempts[1].redelivered,
        "second attempt is flagged as a redelivery"
    );
    assert_eq!(depth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at 127.0.0.1:5672 (LOTTERY_TEST_AMQP_URL)"]
async fn messages_in_flight_when_a_consumer_dies_are_redelivered() {
    let mut config = fresh_config("crash").await;
    config.prefetch = 10;
    let admin = admin(&config).await;
    let publisher = AmqpPublisher::new(config.clone()).expect("valid config");
    let batch = json_messages(Topic::AwardInvoice, "crash", 300);
    let results = publisher.publish_all(&batch).await;

    let slow = Recorder::accepting(Duration::from_millis(20));
    let first = Running::start(&config, slow.clone(), Topic::AwardInvoice);
    let partway = eventually(Duration::from_secs(20), async || slow.done_count() >= 50).await;
    first.abort().await;
    let handled_before_crash = slow.done_count();

    let recorder = Recorder::accepting(Duration::ZERO);
    let started = Instant::now();
    let second = Running::start(&config, recorder.clone(), Topic::AwardInvoice);
    let expected: HashSet<String> = batch.iter().map(|m| m.message_id.clone()).collect();
    let all_handled = eventually(Duration::from_secs(30), async || {
        let mut handled: HashSet<String> = slow.done().into_iter().collect();
        handled.extend(recorder.done());
        handled == expected
    })
    .await;
    let recovery = started.elapsed();
    second.stop().await;
    publisher.close().await;
    let depth = admin.queue_depth(Topic::AwardInvoice).await.expect("depth");
    remove(admin).await;
    println!("crashed after {handled_before_crash} handled; rest handled in {recovery:?}");

    assert!(results.iter().all(Result::is_ok));
    assert!(partway);
    assert!(
        handled_before_crash < 300,
        "the crash came too late to test anything"
    );
    assert!(all_handled, "messages went missing after the crash");
    // The deliveries the dead consumer held come back flagged.
    assert!(recorder.seen().iter().any(|m| m.redelivered));
    assert_eq!(depth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at 127.0.0.1:5672 (LOTTERY_TEST_AMQP_URL)"]
async fn publisher_and_consumer_recover_from_a_broker_outage() {
    let config = fresh_config("outage").await;
    let admin = admin(&config).await;
    let proxy = TcpProxy::for_service(Service::RabbitMq)
        .await
        .expect("proxy");
    let mut proxied = config.clone();
    proxied.url = proxy.proxied_url(&config.url).expect("proxied url");
    let publisher = AmqpPublisher::new(proxied.clone()).expect("valid config");
    let recorder = Recorder::accepting(Duration::ZERO);
    let consumer = Running::start(&proxied, recorder.clone(), Topic::AwardInvoice);

    let before = publisher
        .publish(&message(Topic::AwardInvoice, "before", "{}"))
        .await;
    let got_before = eventually(Duration::from_secs(10), async || recorder.done_count() >= 1).await;

    proxy.cut().await;
    let started = Instant::now();
    let during = publisher
        .publish(&message(Topic::AwardInvoice, "during-1", "{}"))
        .await;
    let first_failure = started.elapsed();
    let started = Instant::now();
    let during_again = publisher
        .publish(&message(Topic::AwardInvoice, "during-2", "{}"))
        .await;
    let second_failure = started.elapsed();

    proxy.restore().await.expect("proxy listens again");
    // Past the publisher's cooldown after the failed reconnection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let after = publisher
        .publish_all(&json_messages(Topic::AwardInvoice, "after", 10))
        .await;
    let reconnect = started.elapsed();
    let got_after = eventually(Duration::from_secs(15), async || {
        let done = recorder.done_by_id();
        (0..10).all(|i| done.contains_key(&format!("after-{i}")))
    })
    .await;
    consumer.stop().await;
    publisher.close().await;
    remove(admin).await;
    println!(
        "outage: first failure after {first_failure:?}, second after {second_failure:?}, \
         reconnect and publish 10 in {reconnect:?}"
    );

    assert_eq!(before, Ok(()));
    assert!(got_before);
    assert!(
        matches!(during, Err(PublishError::Unavailable(_))),
        "{during:?}"
    );
    assert!(
        matches!(during_again, Err(PublishError::Unavailable(_))),
        "{during_again:?}"
    );
    assert!(first_failure < Duration::from_secs(3), "{first_failure:?}");
    assert!(
        second_failure < Duration::from_secs(3),
        "{second_failure:?}"
    );
    assert!(after.iter().all(Result::is_ok), "{after:?}");
    assert!(
        got_after,
        "consumer resumed after the outage: {:?}",
        recorder.done()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at 127.0.0.1:5672 (LOTTERY_TEST_AMQP_URL)"]
async fn unroutable_and_refused_messages_are_rejected_each_on_its_own() {
    const ACCEPTED: i32 = 17;
    let mut config = fresh_config("noroute").await;
    config.declare_topology = false;
    let url = config.url.clone();
    // An exchange with a queue bound for one topic only.
    let raw = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("raw connection");
    let channel = raw.create_channel().await.expect("channel");
    let queue = lottery_testkit::unique_name("mq_noroute_q");
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange");
    let publisher = AmqpPublisher::new(config.clone()).expect("valid config");
    // Nothing is bound yet: the message has nowhere to go and comes back.
    let single = publisher
        .publish(&message(Topic::AwardInvoice, "lost", "{}"))
        .await;
    // A queue that takes 17 messages and refuses the rest: one batch gets both answers.
    let mut limits = FieldTable::default();
    limits.insert(
        "x-max-length".into(),
        lapin::types::AMQPValue::LongInt(ACCEPTED),
    );
    limits.insert(
        "x-overflow".into(),
        lapin::types::AMQPValue::LongString("reject-publish".into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            limits,
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.as_str().into(),
            config.exchange.as_str().into(),
            Topic::AwardInvoice.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let mixed: Vec<_> = (0..50)
        .map(|i| message(Topic::AwardInvoice, &format!("mixed-{i}"), "{}"))
        .collect();
    let results = publisher.publish_all(&mixed).await;
    publisher.close().await;
    let routed = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");
    channel
        .exchange_delete(
            config.exchange.as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .expect("delete exchange");
    let _ = raw.close(200, "done".into()).await;

    assert!(
        matches!(single, Err(PublishError::Rejected(_))),
        "{single:?}"
    );
    // The broker takes messages in publish order: the first ones fill the queue, and each
    // of the rest is answered refused on its own.
    let accepted = usize::try_from(ACCEPTED).expect("small");
    for (i, (m, r)) in mixed.iter().zip(&results).enumerate() {
        if i < accepted {
            assert_eq!(r, &Ok(()), "{}", m.message_id);
        } else {
            assert!(
                matches!(r, Err(PublishError::Rejected(_))),
                "{}: {r:?}",
                m.message_id
            );
        }
    }
    assert_eq!(routed as usize, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at 127.0.0.1:5672 (LOTTERY_TEST_AMQP_URL)"]
async fn graceful_stop_finishes_started_messages_and_returns_the_rest() {
    let mut config = fresh_config("stop").await;
    config.prefetch = 10;
    let admin = admin(&config).await;
    let publisher = AmqpPublisher::new(config.clone()).expect("valid config");
    let batch = json_messages(Topic::AwardInvoice, "stop", 100);
    let results = publisher.publish_all(&batch).await;

    let recorder = Recorder::accepting(Duration::from_millis(50));
    let consumer = Running::start(&config, recorder.clone(), Topic::AwardInvoice);
    let partway = eventually(Duration::from_secs(20), async || {
        recorder.done_count() >= 20
    })
    .await;
    let started = Instant::now();
    consumer.stop().await;
    let stop_time = started.elapsed();
    let depth = admin.queue_depth(Topic::AwardInvoice).await.expect("depth");
    publisher.close().await;
    remove(admin).await;
    println!("graceful stop took {stop_time:?}");

    assert!(results.iter().all(Result::is_ok));
    assert!(partway);
    // Every handler that started ran to completion and was acknowledged ...
    assert_eq!(recorder.seen().len(), recorder.done_count());
    let counts = recorder.done_by_id();
    assert!(counts.values().all(|&n| n == 1));
    // ... and everything else is back in the queue, ready for the next consumer.
    assert_eq!(depth as usize, 100 - recorder.done_count());
}
