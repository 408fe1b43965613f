//! Encode and decode rates of the wire codec: an ASAP Registration and a Handle Resolution
//! Response with 32 PEs, beside a plain copy of the same bytes as the baseline.
//!
//! `cargo bench --bench codec`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rserpool::wire::*;

fn pe(i: u32) -> PoolElement {
    PoolElement {
        id: PoolElementId(0x0e00_0000 + i),
        home_registrar: RegistrarId(0x1111_1111),
        registration_life: 90_000,
        user_transport: Transport::Sctp(SctpTransport {
            port: 40_000 + i as u16,
            transport_use: TransportUse::DataPlusControl,
            addresses: vec![
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i as u8)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10 + i as u16)),
            ],
        }),
        policy: Policy::LeastUsed {
            load: fraction(f64::from(i) / 32.0),
        },
        asap_transport: None,
    }
}

fn registration() -> AsapMessage {
    AsapMessage::Registration(Registration {
        pool_handle: PoolHandle::try_from("EchoPool").unwrap(),
        pool_element: PoolElement {
            home_registrar: RegistrarId(0),
            ..pe(1)
        },
    })
}

fn resolution_response() -> AsapMessage {
    AsapMessage::HandleResolutionResponse(HandleResolutionResponse {
        accept_updates: false,
        pool_handle: PoolHandle::try_from("EchoPool").unwrap(),
        policy: Some(Policy::LeastUsed { load: 0 }),
        elements: (0..32).map(pe).collect(),
        error: None,
    })
}

fn bench(c: &mut Criterion) {
    for (name, msg) in [
        ("registration", registration()),
        ("handle_resolution_response_32pe", resolution_response()),
    ] {
        let bytes = msg.to_bytes().unwrap();
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("encode", |b| {
            let mut out = Vec::with_capacity(bytes.len());
            b.iter(|| {
                out.clear();
                black_box(&msg).encode(&mut out).unwrap();
                black_box(&out);
            })
        });
        g.bench_function("decode", |b| {
            b.iter(|| black_box(AsapMessage::decode(black_box(&bytes)).unwrap()))
        });
        // Baseline: copying the message's bytes into a fresh buffer.
        g.bench_function("copy_baseline", |b| {
            b.iter(|| black_box(black_box(&bytes[..]).to_vec()))
        });
        g.finish();
        eprintln!("{name}: {} bytes", bytes.len());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
