//! Finds DPDK with pkg-config, generates bindings for the few functions and types Rouge
//! uses (a narrow allowlist) and compiles the C shim that exports DPDK's inline
//! fast-path functions. No `-march=native`: the flags are pkg-config's own.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The default build needs no DPDK: the crate is empty without feature `dpdk`.
    #[cfg(feature = "dpdk")]
    generate();
}

#[cfg(feature = "dpdk")]
fn generate() {
    use std::env;
    use std::path::PathBuf;

    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "rouge-dpdk-sys needs DPDK's development files (Debian: apt-get install \
                 libdpdk-dev libclang-dev pkg-config): {e}"
            )
        });

    // pkg-config's cflags are include paths, `-include rte_config.h` and
    // `-march=corei7` (DPDK's own baseline); the same go to clang and cc.
    let mut clang_args: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    clang_args.push("-include".into());
    clang_args.push("rte_config.h".into());

    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .warnings(false)
        .flag_if_supported("-march=corei7");
    for p in &dpdk.include_paths {
        build.include(p);
    }
    build.flag("-include").flag("rte_config.h");
    for (k, v) in &dpdk.defines {
        build.define(k, v.as_deref());
    }
    build.compile("rouge_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("shim.h")
        .clang_args(&clang_args)
        .clang_arg("-march=corei7")
        .allowlist_function("rouge_.*")
        .allowlist_function("rte_eal_init")
        .allowlist_function("rte_eal_cleanup")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_eth_dev_configure")
        .allowlist_function("rte_eth_dev_count_avail")
        .allowlist_function("rte_eth_dev_get_port_by_name")
        .allowlist_function("rte_eth_dev_info_get")
        .allowlist_function("rte_eth_dev_socket_id")
        .allowlist_function("rte_eth_dev_start")
        .allowlist_function("rte_eth_dev_stop")
        .allowlist_function("rte_eth_dev_close")
        .allowlist_function("rte_eth_dev_get_mtu")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_rx_queue_setup")
        .allowlist_function("rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_function("rte_eth_stats_reset")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_thread_register")
        .allowlist_function("rte_thread_unregister")
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_dev_remove")
        .allowlist_function("rte_eth_dev_get_name_by_port")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("RTE_ETHER_MAX_LEN")
        // The mbuf and the mempool are only handled through pointers and the shim.
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        // Packed structs with aligned members bindgen cannot express (E0588).
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen over DPDK's headers (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}
