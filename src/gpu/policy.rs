//! The launch policy: every choice that depends on the adapter rather than on the maths.
//!
//! The same op can be launched several ways: copy commands or a kernel, one workgroup or a
//! split reduction with a finishing pass, a fused multi-term kernel or one launch per term,
//! intermediates kept or recomputed. Which is faster depends on what a launch costs on the
//! adapter. On CPU adapters (Mesa's lavapipe and llvmpipe) every launch pays a thread-pool
//! hand-off of ~30–45 µs while a copy is a memcpy; on GPUs launches are cheap and idle lanes
//! are the cost. Ops ask this one value their questions; none reads the adapter type or its
//! limits itself, so what runs differently on a CPU adapter is all on this page.
//!
//! A policy is built once per device from the adapter ([`LaunchPolicy::for_adapter`]), can be
//! replaced by either preset ([`Strategy`]) for tests and `bench --strategy`, and prints
//! itself (`bench`, `devices`).

use super::AdapterSummary;
use serde::Serialize;
use std::fmt;

/// Largest batch × C up to which `--cpu-threads auto` runs a CPU adapter on the submitting
/// thread (decided before the device opens: Mesa reads `LP_NUM_THREADS` then). On the 2-core
/// box (lavapipe, 32×32 images, search step) the hand-off dominates up to here: C=2 batch 2
/// in 135 ms against 244 ms, C=4 batch 4 in 498 against 603. At 32 the driver's threads win
/// or tie (C=2 batch 16: 600 against 710 ms; C=16 batch 2: 1.76–1.98 s against 2.01–2.11;
/// C=8 batch 4: 1.59–1.74 s against 1.64–1.65), and beyond clearly (C=4 batch 32: 2.45–2.71
/// s against 3.74–3.84).
pub const SUBMITTING_THREAD_MAX_WORK: usize = 16;

/// Which family of adapters the thresholds were measured for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Launches are costly (software adapters): fewer, larger launches; copies for data moves.
    Cpu,
    /// Launches are cheap (real GPUs): enough threads to fill the device.
    Gpu,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Cpu => "cpu",
            Strategy::Gpu => "gpu",
        }
    }
}

/// Every adapter-dependent launch decision, as named thresholds (each with what was measured)
/// and questions the ops ask. Fields marked CPU apply on the CPU strategy only, GPU on the
/// GPU strategy only; both presets carry the same numbers, except the weight-gradient
/// thread targets (measured on each).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LaunchPolicy {
    pub strategy: Strategy,
    /// Storage buffers one shader stage may bind (the device's limit): kernels that bind
    /// more have narrower variants.
    pub max_storage_buffers: u32,
    /// Forced split of per-channel reductions (tests, `bench --channel-split`); None = the
    /// rule in [`LaunchPolicy::bn_split`].
    pub forced_split: Option<usize>,
    /// CPU: images up to which a concat or channel slice moves each image's contiguous run
    /// by a copy command (a memcpy each on lavapipe, ~1 µs) instead of one launch.
    pub copy_images_max: usize,
    /// CPU: values up to which a dot-product reduction runs in one workgroup with no
    /// finishing launch (its serial work costs less than the second launch).
    pub dot_one_group_max: usize,
    /// CPU: values (a multiple of 4) up to which vec4 dot products run in one thread, where
    /// a workgroup's barriers cost more than the arithmetic.
    pub dot_serial_max: usize,
    /// CPU: workgroups at most for larger dot products (a mixed edge's α gradient). Each
    /// ends in four 256-wide tree sums, 36 barriers, and a barrier on llvmpipe suspends and
    /// resumes all 32 of the workgroup's SIMD rows: with ~1,000-value chunks (the GPU split)
    /// the barriers, not the products, were the time.
    pub dot_groups_max: usize,
    /// CPU: intermediates of a depthwise + 1×1 pair up to this many values are kept rather
    /// than recomputed (every one of the C=2, 3-cell network's; at C=16, batch 64 only the
    /// third stage's, 262,144 values each). Unfused pairs (past 16 channels) write theirs
    /// anyway: keeping the C=32 and 64 ones at C=16, 8 cells, batch 8 took
    /// 504 launches from the step, 0.95× its time (3 rounds), peak 504 → 598 MiB. On GPUs the recomputing launch is cheap. Lavapipe, 2 threads:
    /// raised from 65,536 to 262,144, which keeps the first stage's (131,072 values) at C=8,
    /// batch 16 and C=16, batch 8: steps 5 % and 10 % shorter, peak 312 → 354 MiB at C=8;
    /// keeping all of them at C=16, batch 64 (1M values) made its step no shorter (32.1
    /// against 30.0 s) and its peak 2,601 → 3,273 MiB.
    pub keep_intermediate_max: usize,
    /// CPU: multiply-adds per thread up to which a weight gradient is done by one pass of
    /// one chunk (no partials, no second launch): about what a launch costs on lavapipe.
    pub one_pass_work_max: usize,
    /// CPU: what one pass may leave to one core, in multiply-adds per 8-lane row beyond an
    /// even share of the adapter's threads (`cpu_threads`); past it the gradient is split so
    /// every thread takes a part. A one-pass launch is a workgroup or a few: lavapipe runs a
    /// workgroup's rows on one thread, so the 1×1 and depthwise weight gradients of the
    /// DARTS network's later stages (C=16, 8 cells, batch 8) ran on one core of two, 9 % of
    /// the step. Measured in docs/performance.md (twelfth round).
    pub one_pass_excess_max: usize,
    /// CPU: threads the adapter runs a launch's workgroups on (1 on GPUs and where
    /// `LP_NUM_THREADS=0`).
    pub cpu_threads: usize,
    /// (block, chunk) threads a split dense or 1×1 weight gradient aims at to fill the
    /// device. H200 (DARTS C=16, 8 cells, and NAS-Bench-201 C=16, batches 64 and 256, with
    /// the workgroup second pass): 65,536 cut the step 5–29 % against 16,384; 262,144 was no
    /// better (`tools/policy_sweep.py`, docs/performance.md).
    pub weight_grad_threads: usize,
    /// CPU adapters of several threads: a dense or 1×1 weight gradient that one pass would
    /// leave unbalanced is split into this many equal workgroups per adapter thread, one
    /// chunk of rows each where the blocks fit a workgroup (0, the GPU preset: split by
    /// `weight_grad_threads`). Each chunk is partials the second pass adds, so
    /// few long chunks; the `weight_grad_threads` split made 8–256 chunks of a few rows at
    /// NAS-Bench-201's sizes, and two threads ran those gradients only 1.2× faster than one.
    pub weight_grad_groups_per_thread: usize,
    /// (channel, chunk of rows) threads a split depthwise weight gradient aims at; measured
    /// with `weight_grad_threads` on GPUs (the same values). On CPU adapters four workgroups
    /// of 64 per adapter thread: enough to keep every thread busy, while each extra chunk
    /// is a partial the second pass walks serially (lavapipe, 2 threads, batch 16: the
    /// backward of a 3×3 depthwise at C=4 1.0–1.6 → 1.0 ms, C=32 1.8–2.0 → 1.6, C=64
    /// 1.2–1.4 → 0.9–1.0 against 8,192).
    pub weight_grad_chunk: usize,
    /// Multiply-adds per weight up to which the generic convolution's weight gradient takes
    /// one thread per weight instead of a workgroup (256 threads and a tree sum) per weight:
    /// DARTS' auxiliary head (768×128×2×2 weights, one output position per image) spent
    /// seconds per step on lavapipe in 393,216 mostly idle workgroups.
    pub serial_weight_grad_max: usize,
    /// GPU: threads a large launch must keep; a dense convolution takes as many output
    /// channels per thread as still leave this many (2^16 fills an H200's 132 SMs).
    pub min_threads: usize,
    /// CPU: values per channel up to which one thread per channel does a train-mode batch
    /// norm (lavapipe, 2 cores: 4×64×8×8 in 72 µs against 195 µs for a workgroup per
    /// channel, 16×16×16×16 in 144 µs against 188; past it few channels leave a core idle).
    pub bn_serial_max: usize,
    /// CPU: values per channel up to which a mixed edge's fused normalised sum takes one
    /// thread per channel whatever the channel count (lavapipe, 2 cores, before the term
    /// layout became pipeline constants: 6 normalised + 2 plain terms on 2×16×8×8 in 200 µs
    /// against 695 µs separately; on 4×8×32×32 875 µs against 799 µs);
    /// [`Self::normalized_sum_serial`].
    pub fused_sum_max: usize,
    /// CPU: values per channel up to which a larger normalised sum is still one fused launch,
    /// with a workgroup per channel (`sum_forward_group4`): the separate batch norms write
    /// each normalised term and the weighted sum reads it back, and α's dot products read
    /// the terms and gy again, where the fused launches read each term twice a way.
    pub group_sum_max: usize,
    /// CPU: bytes up to which a dense convolution's weight is also bound as a uniform
    /// buffer, which `forward4` reads it from (padded to the 64 KiB window it declares).
    /// Inside a loop llvmpipe loads a storage value lane by lane, a bounds test each, even
    /// where every lane reads the same index; a uniform one once. Single-threaded lavapipe,
    /// conv3x3 C=16 batch 8 (`kernels` bench): forward 12.9 → 8.9 ms, backward 29.7 → 24.4.
    pub uniform_weight_max: usize,
    /// CPU adapters with subgroups of 8 consecutive lanes (llvmpipe): a dense convolution's
    /// `forward4` gathers each weight once per 8 lanes and broadcasts it (LANES = 1). llvmpipe
    /// cannot tell that a weight index built from loop counters is the same in every lane, so
    /// it gathers it lane by lane, 16 gathers per input per tap at 16 channels per thread;
    /// with broadcasts 2.
    pub lanes: bool,
    /// GPU: chunks of a split weight gradient from which its second pass sums each weight's
    /// partials with a workgroup (strided loads and a tree sum) rather than one thread
    /// walking them all: on an H200 a thread summing 512 partials took ~70 µs a launch.
    pub chunk_sum_group_min: usize,
    /// GPU: values (channels × values per channel) up to which the producer of a batch norm's
    /// input writes its statistics. On an H200 at batch 256 `gemm4_stats` took 215 µs a launch
    /// against 87 µs for `gemm4` alone; whether the batch norm's own split pass is cheaper
    /// there is for the next GPU measurement to say (`tools/gpu_check.sh` sweeps it): no
    /// limit by default.
    pub producer_stats_max: usize,
    /// GPU: a split per-channel reduction uses chunks of at least this many values…
    pub bn_chunk_min: usize,
    /// …and aims at this many workgroups in all.
    pub bn_target_groups: usize,
}

/// A tunable threshold of a [`LaunchPolicy`], reached by name (`DARTS_MINUS_POLICY`).
type Threshold = fn(&mut LaunchPolicy) -> &mut usize;

/// The kernels that bind more storage buffers than WebGPU guarantees (8 per stage): (shader,
/// entry point, storage buffers). The policy chooses each only where the device binds that
/// many, else a narrower path; every other kernel fits WebGPU's limits (checked by a test).
pub const WIDE_KERNELS: [(&str, &str, u32); 7] = [
    ("optim", "sgd4_clipped", 14),
    ("mixed", "weighted_sum8_vec4", 11),
    ("mixed", "sum_forward4", 14),
    ("mixed", "sum_forward_group4", 14),
    ("mixed", "sum_backward4", 15),
    ("mixed", "sum_backward_group4", 15),
    ("mixed", "eval_sum8_vec4", 13),
];

/// The CPU strategy's `weight_grad_chunk` on an adapter of `threads` threads: four workgroups
/// of 64 per thread (of at least two).
fn cpu_weight_grad_chunk(threads: usize) -> usize {
    256 * threads.max(2)
}

impl LaunchPolicy {
    /// The preset for `strategy` on a device with `max_storage_buffers` storage bindings per
    /// stage.
    pub fn preset(strategy: Strategy, max_storage_buffers: u32) -> LaunchPolicy {
        LaunchPolicy {
            strategy,
            max_storage_buffers,
            forced_split: None,
            copy_images_max: 64,
            dot_one_group_max: 1 << 15,
            dot_serial_max: 8192,
            dot_groups_max: 8,
            keep_intermediate_max: 1 << 18,
            one_pass_work_max: 1 << 16,
            one_pass_excess_max: 1 << 15,
            cpu_threads: 1,
            // Lavapipe's 2 cores want few, long threads; an H200 wants 4× more.
            weight_grad_threads: match strategy {
                Strategy::Cpu => 16384,
                Strategy::Gpu => 65536,
            },
            weight_grad_groups_per_thread: match strategy {
                Strategy::Cpu => 1,
                Strategy::Gpu => 0,
            },
            weight_grad_chunk: match strategy {
                Strategy::Cpu => cpu_weight_grad_chunk(1),
                Strategy::Gpu => 65536,
            },
            serial_weight_grad_max: 2048,
            min_threads: 1 << 16,
            bn_serial_max: 4096,
            fused_sum_max: 2048,
            group_sum_max: usize::MAX,
            uniform_weight_max: 65_536,
            lanes: false,
            bn_chunk_min: 1024,
            bn_target_groups: 1024,
            chunk_sum_group_min: 64,
            producer_stats_max: usize::MAX,
        }
    }

    /// The thresholds `DARTS_MINUS_POLICY` may set, by field name: for measuring another
    /// value on a new adapter without a rebuild (`bench` prints the policy it ran with).
    const TUNABLE: [(&'static str, Threshold); 20] = [
        ("copy_images_max", |p| &mut p.copy_images_max),
        ("dot_one_group_max", |p| &mut p.dot_one_group_max),
        ("dot_serial_max", |p| &mut p.dot_serial_max),
        ("dot_groups_max", |p| &mut p.dot_groups_max),
        ("keep_intermediate_max", |p| &mut p.keep_intermediate_max),
        ("one_pass_work_max", |p| &mut p.one_pass_work_max),
        ("one_pass_excess_max", |p| &mut p.one_pass_excess_max),
        ("weight_grad_threads", |p| &mut p.weight_grad_threads),
        ("weight_grad_chunk", |p| &mut p.weight_grad_chunk),
        ("weight_grad_groups_per_thread", |p| {
            &mut p.weight_grad_groups_per_thread
        }),
        ("serial_weight_grad_max", |p| &mut p.serial_weight_grad_max),
        ("min_threads", |p| &mut p.min_threads),
        ("bn_serial_max", |p| &mut p.bn_serial_max),
        ("fused_sum_max", |p| &mut p.fused_sum_max),
        ("group_sum_max", |p| &mut p.group_sum_max),
        ("uniform_weight_max", |p| &mut p.uniform_weight_max),
        ("bn_chunk_min", |p| &mut p.bn_chunk_min),
        ("bn_target_groups", |p| &mut p.bn_target_groups),
        ("chunk_sum_group_min", |p| &mut p.chunk_sum_group_min),
        ("producer_stats_max", |p| &mut p.producer_stats_max),
    ];

    fn field(&mut self, name: &str) -> Option<&mut usize> {
        let (_, get) = Self::TUNABLE.iter().find(|(n, _)| *n == name)?;
        Some(get(self))
    }

    /// Parses `name=value,…` (`DARTS_MINUS_POLICY`): thresholds to set over a preset. Values
    /// are positive integers; an unknown name is an error that lists the known ones.
    pub fn parse_overrides(text: &str) -> Result<Vec<(String, usize)>, String> {
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not name=value"))?;
            let name = name.trim();
            if !Self::TUNABLE.iter().any(|(n, _)| *n == name) {
                let known: Vec<&str> = Self::TUNABLE.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "no threshold '{name}'; the known ones: {}",
                    known.join(", ")
                ));
            }
            let value: usize = value
                .trim()
                .parse()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("'{item}': the value must be a positive integer"))?;
            out.push((name.to_string(), value));
        }
        Ok(out)
    }

    /// The overrides `DARTS_MINUS_POLICY` sets (none where it is unset).
    pub fn env_overrides() -> Result<Vec<(String, usize)>, String> {
        match std::env::var("DARTS_MINUS_POLICY") {
            Ok(text) => {
                Self::parse_overrides(&text).map_err(|e| format!("DARTS_MINUS_POLICY: {e}"))
            }
            Err(_) => Ok(Vec::new()),
        }
    }

    /// This policy with `overrides` (from [`LaunchPolicy::parse_overrides`]) set.
    pub fn with_overrides(mut self, overrides: &[(String, usize)]) -> LaunchPolicy {
        for (name, value) in overrides {
            if let Some(f) = self.field(name) {
                *f = *value;
            }
        }
        self
    }

    /// The policy for an adapter: the CPU preset for CPU (software) adapters, else the GPU one.
    pub fn for_adapter(adapter: &AdapterSummary) -> LaunchPolicy {
        let strategy = if adapter.device_type == "Cpu" {
            Strategy::Cpu
        } else {
            Strategy::Gpu
        };
        LaunchPolicy::preset(strategy, adapter.max_storage_buffers_per_stage).fitted(adapter)
    }

    /// Whether a kernel whose threads take `per_thread` consecutive outputs of rows `row`
    /// values long, in order, finds whole rows in each 8-lane subgroup, so that a lane can take
    /// the columns either side of its own from its neighbouring lanes (SHARE): lane broadcasts
    /// on, and the strips of a row dividing 8.
    pub fn shares_rows(&self, row: u32, per_thread: u32) -> bool {
        let strips = row / per_thread;
        self.lanes && row.is_multiple_of(per_thread) && strips > 0 && 8 % strips == 0
    }

    /// The pipeline constants of a kernel with a LANES path: LANES = 1 where the policy
    /// broadcasts weights across lanes, nothing (the default, 0) elsewhere.
    pub fn lanes_consts(&self) -> &'static [(&'static str, u32)] {
        if self.lanes {
            &[("LANES", 1)]
        } else {
            &[]
        }
    }

    /// This policy fitted to `adapter` on the CPU strategy: lane broadcasts where it has
    /// subgroups of 8 consecutive lanes (the device then opens with them), and its threads.
    pub fn fitted(mut self, adapter: &AdapterSummary) -> LaunchPolicy {
        self.lanes = self.strategy == Strategy::Cpu && adapter.lanes8;
        self.cpu_threads = adapter.cpu_threads;
        if self.strategy == Strategy::Cpu {
            self.weight_grad_chunk = cpu_weight_grad_chunk(adapter.cpu_threads);
        }
        self
    }

    /// Whether launches cost far more than a copy command or a few thousand serial
    /// multiply-adds (the CPU strategy).
    pub fn launches_are_costly(&self) -> bool {
        self.strategy == Strategy::Cpu
    }

    /// Whether the adapter binds `n` storage buffers in one shader stage.
    pub fn binds(&self, n: u32) -> bool {
        self.max_storage_buffers >= n
    }

    // ---- data movement -------------------------------------------------------------------

    /// A concat or channel slice of `images` images: one copy command per image?
    pub fn copy_channels(&self, images: usize) -> bool {
        self.launches_are_costly() && images <= self.copy_images_max
    }

    /// A concat's forward by copy commands (else one launch per input)?
    pub fn concat_by_copy(&self) -> bool {
        self.launches_are_costly()
    }

    /// A concat's backward as four channel blocks per launch (else copies per input)?
    pub fn split_four_per_launch(&self) -> bool {
        !self.launches_are_costly()
    }

    /// Zero-fill by a clear command (a memset) rather than a fill kernel?
    pub fn clear_by_command(&self) -> bool {
        self.launches_are_costly()
    }

    /// Gather the optimiser's gradients, weights and momenta into flat buffers so the norm
    /// and the clipped update take four launches in all, instead of ~2 per parameter?
    pub fn gather_optimizer(&self) -> bool {
        self.launches_are_costly()
    }

    /// SGD with folded clipping, four parameters per launch (`sgd4_clipped`)?
    pub fn sgd_four_per_launch(&self) -> bool {
        self.binds(WIDE_KERNELS[0].2)
    }

    // ---- sums and reductions -------------------------------------------------------------

    /// Terms per weighted-sum launch over `n` values: eight (a mixed edge's seven candidates
    /// in one, eleven bindings, vec4) where the adapter binds them, else four.
    pub fn weighted_sum_terms(&self, n: usize) -> usize {
        if n.is_multiple_of(4) && self.binds(WIDE_KERNELS[1].2) {
            8
        } else {
            4
        }
    }

    /// An inference pass's mixed-edge sum over planes of `hw` values with the candidates'
    /// eval-mode batch norms folded in (one launch, 12 bindings), rather than a batch norm
    /// launch per candidate and a weighted sum? On every adapter that binds it: the same
    /// arithmetic in fewer passes over memory.
    pub fn eval_sum_fused(&self, hw: usize) -> bool {
        hw.is_multiple_of(4) && self.binds(WIDE_KERNELS[6].2)
    }

    /// A dot product over `n` values in one workgroup, with no finishing launch?
    pub fn dot_one_group(&self, n: usize) -> bool {
        self.launches_are_costly() && n <= self.dot_one_group_max
    }

    /// (values per workgroup, workgroups) of a dot product over `n` values that is not done
    /// by one workgroup: `split` (the GPU's ~1,000-value chunks) as it is on GPUs, else with
    /// chunks grown (multiples of 256) to give at most `dot_groups_max` workgroups.
    pub fn dot_chunks(&self, n: usize, split: (usize, usize)) -> (usize, usize) {
        if !self.launches_are_costly() || split.1 <= self.dot_groups_max {
            return split;
        }
        let chunk = n.div_ceil(self.dot_groups_max).next_multiple_of(256);
        (chunk, n.div_ceil(chunk))
    }

    /// Vec4 dot products over `n` values in one thread each?
    pub fn dot_serial(&self, n: usize) -> bool {
        self.launches_are_costly() && n <= self.dot_serial_max && n.is_multiple_of(4)
    }

    /// Workgroups that share one channel's reduction over `per_channel` values (batch norm):
    /// 1 on the CPU strategy, where one workgroup per channel does statistics and
    /// normalisation in one launch; on GPUs enough chunks of at least `bn_chunk_min` values
    /// to give the device about `bn_target_groups` workgroups.
    pub fn bn_split(&self, channels: usize, per_channel: usize) -> usize {
        let most = per_channel.div_ceil(self.bn_chunk_min).max(1);
        match self.forced_split {
            Some(parts) => parts.clamp(1, per_channel.max(1)),
            None if self.launches_are_costly() => 1,
            None => self
                .bn_target_groups
                .div_ceil(channels.max(1))
                .clamp(1, most),
        }
    }

    /// Whether the producer of a batch norm's input should write the statistics: where the
    /// batch norm would split its reduction anyway, the producer's workgroups serve as its
    /// chunks and a pass over the tensor is saved; one fused launch per channel (CPU) is
    /// cheaper than partials.
    pub fn stats_in_producer(&self, channels: usize, per_channel: usize) -> bool {
        self.bn_split(channels, per_channel) > 1
            && channels.saturating_mul(per_channel) <= self.producer_stats_max
    }

    /// A train-mode batch norm over `per_channel` values with one thread per channel?
    pub fn bn_serial(&self, per_channel: usize) -> bool {
        self.launches_are_costly() && per_channel <= self.bn_serial_max
    }

    /// A mixed edge's normalised sum over `per_channel` values a channel as one fused launch
    /// each way? The op adds its own structural conditions;
    /// [`Self::normalized_sum_serial`] says which form. Without subgroups (llvmpipe's GL) the
    /// workgroup-per-channel form's sums take barriers instead (`lanes_none.wgsl`).
    pub fn fuse_normalized_sum(&self, per_channel: usize) -> bool {
        let fits = WIDE_KERNELS[2..6].iter().all(|k| self.binds(k.2));
        self.launches_are_costly() && fits && per_channel <= self.group_sum_max
    }

    /// A fused normalised sum over `channels` of `per_channel` values with one thread per
    /// channel (`sum_forward4`, `sum_backward4`; workgroups of 8 channels), rather than a
    /// workgroup per channel (`sum_forward_group4`, `sum_backward_group4`)? Where the channels
    /// are small, or at least 16 (two workgroups): the group form pays barriers and tree sums
    /// (lavapipe, one thread, NAS-Bench-201 at batch 16: 16 channels of 16,384 values 139 ms
    /// a step one thread a channel against 181 ms). Not by the adapter's thread count: the two
    /// forms round differently, and a run must give the same numbers whatever its threads
    /// (a search resumed with other `--cpu-threads`).
    pub fn normalized_sum_serial(&self, channels: usize, per_channel: usize) -> bool {
        per_channel <= self.fused_sum_max || channels >= 16
    }

    // ---- convolutions --------------------------------------------------------------------

    /// Keep an intermediate of `numel` values for the backward rather than recompute it?
    pub fn keep_intermediate(&self, numel: usize) -> bool {
        self.launches_are_costly() && numel <= self.keep_intermediate_max
    }

    /// A weight gradient of `work` multiply-adds per thread done by one pass of one chunk?
    /// A generic convolution's weight gradient with `per_weight` multiply-adds per weight: one
    /// thread per weight (else a workgroup per weight)?
    pub fn weight_grad_serial(&self, per_weight: usize) -> bool {
        per_weight <= self.serial_weight_grad_max
    }

    /// The second pass of a weight gradient split into `chunks` chunks: a workgroup per
    /// weight (strided partial loads, a tree sum) rather than a thread walking every chunk?
    pub fn chunk_sum_by_group(&self, chunks: usize) -> bool {
        !self.launches_are_costly() && chunks >= self.chunk_sum_group_min
    }

    /// A weight gradient of `work` multiply-adds per thread, over `threads` threads in
    /// workgroups of `group`, done by one pass of one chunk? Where the launch's few workgroups
    /// would leave one of the adapter's threads more than `one_pass_excess_max` beyond its
    /// share, splitting (and a second launch) costs less.
    pub fn weight_grad_one_pass(&self, work: usize, threads: usize, group: usize) -> bool {
        // lavapipe runs a workgroup on one thread, 8 lanes a row (256-bit vectors).
        let rows = |t: usize| t.div_ceil(8);
        let groups = threads.div_ceil(group);
        let busiest = rows(threads.min(groups.div_ceil(self.cpu_threads) * group));
        let share = rows(threads).div_ceil(self.cpu_threads);
        self.launches_are_costly()
            && work <= self.one_pass_work_max
            && (busiest - share).saturating_mul(work) <= self.one_pass_excess_max
    }

    /// The even split of a weight gradient that [`Self::weight_grad_one_pass`] refused, on a
    /// CPU adapter of several threads: `(chunks, group)` for `block_threads` threads a chunk
    /// (a multiple of 8, so subgroups stay whole) over `rows` rows, such that the launch's
    /// `block_threads · chunks` threads make `weight_grad_groups_per_thread` workgroups of
    /// `group` threads per adapter thread, all alike. None where there is no such split
    /// (then `weight_grad_threads` sets the chunks, in workgroups of 256).
    pub fn weight_grad_split(&self, block_threads: usize, rows: usize) -> Option<(usize, usize)> {
        if !self.launches_are_costly()
            || self.cpu_threads < 2
            || self.weight_grad_groups_per_thread == 0
            || block_threads == 0
            || !block_threads.is_multiple_of(8)
        {
            return None;
        }
        let chunks = self.cpu_threads * self.weight_grad_groups_per_thread;
        // A chunk's blocks in the fewest equal workgroups of at most 256 threads.
        let parts = (block_threads.div_ceil(256)..=block_threads / 8)
            .find(|&k| block_threads.is_multiple_of(k) && (block_threads / k).is_multiple_of(8))?;
        (rows >= chunks).then_some((chunks, block_threads / parts))
    }

    /// A weight of `bytes` allocated so it can also be bound as a uniform window?
    pub fn weight_as_uniform(&self, bytes: u64) -> bool {
        self.launches_are_costly() && bytes <= self.uniform_weight_max as u64
    }

    /// Threads per workgroup for a kernel of one thread per group of 4 outputs (`gemm4`,
    /// the dense `forward4`) over `quads` of them: 256, except that where launches are costly
    /// the launch's workgroups are made equal and no wider than needed (a multiple of 8, for
    /// the lane broadcasts), since llvmpipe runs every thread of a workgroup, a clamped idle
    /// one too. 128 quads (C=64 at 8×8, batch 8) take one workgroup of 128 instead of half a
    /// workgroup of 256 idle.
    pub fn quads_per_group(&self, quads: usize) -> usize {
        if !self.launches_are_costly() {
            return 256;
        }
        let groups = quads.div_ceil(256).max(1);
        quads.div_ceil(groups).next_multiple_of(8).clamp(8, 256)
    }

    /// Output channels per thread for a dense convolution over `quads` groups of 4 outputs
    /// and `cout` channels: the most (fewest loads per multiply-add); on GPUs the most that
    /// still leave `min_threads` threads.
    pub fn channels_per_thread(&self, quads: usize, cout: usize) -> usize {
        [16, 8, 4]
            .into_iter()
            .filter(|&r| cout >= r)
            .find(|&r| self.launches_are_costly() || quads * cout.div_ceil(r) >= self.min_threads)
            .unwrap_or(4)
    }
}

impl fmt::Display for LaunchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let split = match self.forced_split {
            Some(k) => format!("forced {k}"),
            None if self.launches_are_costly() => "1 (one workgroup per channel)".into(),
            None => format!(
                "chunks of >= {} values, ~{} workgroups",
                self.bn_chunk_min, self.bn_target_groups
            ),
        };
        writeln!(f, "launch policy: {} strategy", self.strategy.name())?;
        writeln!(
            f,
            "  storage buffers per stage    {}",
            self.max_storage_buffers
        )?;
        writeln!(f, "  batch-norm split             {split}")?;
        // (name, value, the strategy it applies on: None = both).
        use Strategy::{Cpu, Gpu};
        let rows: [(&str, usize, Option<Strategy>); 20] = [
            ("adapter threads", self.cpu_threads, Some(Cpu)),
            ("copy concat up to images", self.copy_images_max, Some(Cpu)),
            ("one-group dot up to", self.dot_one_group_max, Some(Cpu)),
            ("serial dot up to", self.dot_serial_max, Some(Cpu)),
            ("dot workgroups at most", self.dot_groups_max, Some(Cpu)),
            (
                "keep intermediates up to",
                self.keep_intermediate_max,
                Some(Cpu),
            ),
            (
                "one-pass weight grad up to",
                self.one_pass_work_max,
                Some(Cpu),
            ),
            ("one-pass excess up to", self.one_pass_excess_max, Some(Cpu)),
            ("serial batch norm up to", self.bn_serial_max, Some(Cpu)),
            ("fused normalised sum up to", self.fused_sum_max, Some(Cpu)),
            ("group normalised sum up to", self.group_sum_max, Some(Cpu)),
            (
                "uniform weights up to bytes",
                self.uniform_weight_max,
                Some(Cpu),
            ),
            ("min threads per launch", self.min_threads, Some(Gpu)),
            ("weight-grad threads", self.weight_grad_threads, None),
            ("weight-grad chunk", self.weight_grad_chunk, None),
            (
                "weight-grad groups/thread",
                self.weight_grad_groups_per_thread,
                Some(Cpu),
            ),
            (
                "group sums from chunks",
                self.chunk_sum_group_min,
                Some(Gpu),
            ),
            (
                "producer statistics up to",
                self.producer_stats_max,
                Some(Gpu),
            ),
            (
                "serial weight grad up to",
                self.serial_weight_grad_max,
                None,
            ),
            (
                "weighted-sum terms/launch",
                self.weighted_sum_terms(4),
                None,
            ),
        ];
        for (name, v, on) in rows {
            match on {
                Some(s) if s != self.strategy => {
                    writeln!(f, "  {name:<28} off ({} strategy only)", s.name())?
                }
                _ if v == usize::MAX => writeln!(f, "  {name:<28} no limit")?,
                _ => writeln!(f, "  {name:<28} {v}")?,
            }
        }
        let lanes = if self.lanes {
            "on (weights broadcast across 8 lanes)"
        } else {
            "off (CPU adapters with 8-lane subgroups only)"
        };
        writeln!(f, "  {:<28} {lanes}", "lane broadcasts")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_named_thresholds_and_reject_unknown_ones() {
        let o =
            LaunchPolicy::parse_overrides(" weight_grad_threads=262144, min_threads=4096").unwrap();
        let p = LaunchPolicy::preset(Strategy::Gpu, 32).with_overrides(&o);
        assert_eq!((p.weight_grad_threads, p.min_threads), (262144, 4096));
        assert_eq!(p.weight_grad_chunk, 65536);
        let e = LaunchPolicy::parse_overrides("weight_threads=4").unwrap_err();
        assert!(
            e.contains("weight_threads") && e.contains("weight_grad_threads"),
            "{e}"
        );
        assert!(LaunchPolicy::parse_overrides("min_threads=0").is_err());
        assert!(LaunchPolicy::parse_overrides("min_threads").is_err());
        assert!(LaunchPolicy::parse_overrides("").unwrap().is_empty());
        // The producer's statistics: by default wherever the batch norm splits, none past 1.
        assert!(p.stats_in_producer(16, 65536));
        let o = LaunchPolicy::parse_overrides("producer_stats_max=1").unwrap();
        assert!(!p.with_overrides(&o).stats_in_producer(16, 65536));
    }

    #[test]
    fn weight_gradients_split_one_equal_workgroup_per_cpu_thread() {
        let two = LaunchPolicy {
            cpu_threads: 2,
            ..LaunchPolicy::preset(Strategy::Cpu, 32)
        };
        // NAS-Bench-201's three stages (whole-kernel form, lanes): a chunk's blocks in one
        // workgroup; past 256 of them the fewest equal workgroups of a multiple of 8.
        assert_eq!(two.weight_grad_split(16, 512), Some((2, 16)));
        assert_eq!(two.weight_grad_split(256, 128), Some((2, 256)));
        assert_eq!(two.weight_grad_split(288, 64), Some((2, 144)));
        assert_eq!(two.weight_grad_split(2592, 64), Some((2, 216)));
        let three = LaunchPolicy {
            cpu_threads: 3,
            weight_grad_groups_per_thread: 2,
            ..two
        };
        assert_eq!(three.weight_grad_split(72, 16), Some((6, 72)));
        // No whole subgroups, fewer rows than chunks, one thread, GPUs, or switched off.
        assert_eq!(two.weight_grad_split(12, 512), None);
        assert_eq!(three.weight_grad_split(8, 5), None);
        let one = LaunchPolicy {
            cpu_threads: 1,
            ..two
        };
        assert_eq!(one.weight_grad_split(16, 512), None);
        let gpu = LaunchPolicy {
            cpu_threads: 2,
            ..LaunchPolicy::preset(Strategy::Gpu, 32)
        };
        assert_eq!(gpu.weight_grad_split(16, 512), None);
        let off = LaunchPolicy {
            weight_grad_groups_per_thread: 0,
            ..two
        };
        assert_eq!(off.weight_grad_split(16, 512), None);
    }

    #[test]
    fn cpu_thresholds_apply_on_the_cpu_strategy_only() {
        let cpu = LaunchPolicy::preset(Strategy::Cpu, 32);
        let gpu = LaunchPolicy::preset(Strategy::Gpu, 32);
        assert!(cpu.copy_channels(64) && !cpu.copy_channels(65));
        assert!(!gpu.copy_channels(1));
        assert!(cpu.dot_serial(8192) && !cpu.dot_serial(8190) && !gpu.dot_serial(8192));
        assert!(cpu.keep_intermediate(1 << 18) && !cpu.keep_intermediate(1 << 18 | 1));
        assert!(!gpu.keep_intermediate(1));
        // Equal workgroups, a multiple of 8 wide, no wider than the quads need.
        let widths = [1, 24, 128, 256, 384, 1000, 1024].map(|q| cpu.quads_per_group(q));
        assert_eq!(widths, [8, 24, 128, 256, 192, 256, 256]);
        assert_eq!(gpu.quads_per_group(128), 256);
        assert!(cpu.weight_grad_one_pass(1 << 16, 256, 256));
        assert!(!gpu.weight_grad_one_pass(0, 1, 1));
        assert!(cpu.bn_serial(4096) && !cpu.bn_serial(4097) && !gpu.bn_serial(1));
        assert!(cpu.concat_by_copy() && !gpu.concat_by_copy());
        assert!(!cpu.split_four_per_launch() && gpu.split_four_per_launch());
        assert!(cpu.weight_as_uniform(65_536) && !cpu.weight_as_uniform(65_537));
        assert!(!gpu.weight_as_uniform(4));
        // Dot products: the GPU split as it is there, at most 8 chunks (of 256s) on CPUs.
        let split = (1024, 256);
        assert_eq!(gpu.dot_chunks(262_144, split), split);
        assert_eq!(cpu.dot_chunks(262_144, split), (32_768, 8));
        assert_eq!(cpu.dot_chunks(100_000, (1024, 98)), (12_544, 8));
        assert_eq!(cpu.dot_chunks(40_000, (1024, 8)), (1024, 8));
    }

    #[test]
    fn one_pass_weight_gradients_leave_no_cpu_thread_idle() {
        let one = LaunchPolicy::preset(Strategy::Cpu, 32);
        let two = LaunchPolicy {
            cpu_threads: 2,
            ..one
        };
        // 16 threads in one workgroup: 2 rows on one thread, one more than a half share.
        assert!(one.weight_grad_one_pass(1 << 16, 16, 256));
        assert!(two.weight_grad_one_pass(1 << 15, 16, 256));
        assert!(!two.weight_grad_one_pass(1 << 15 | 1, 16, 256));
        // 256 threads in one workgroup: 16 rows beyond the share.
        assert!(!two.weight_grad_one_pass(8192, 256, 256));
        assert!(two.weight_grad_one_pass(2048, 256, 256));
        // Two workgroups split evenly between two threads: nothing beyond the share.
        assert!(two.weight_grad_one_pass(1 << 16, 128, 64));
        // Three workgroups: the busiest thread takes two.
        assert!(!two.weight_grad_one_pass(1 << 16, 192, 64));
        assert!(!two.weight_grad_one_pass(1 << 17, 8, 8));
    }

    #[test]
    fn bn_split_rules_and_forced_split() {
        let cpu = LaunchPolicy::preset(Strategy::Cpu, 32);
        let gpu = LaunchPolicy::preset(Strategy::Gpu, 32);
        assert_eq!(cpu.bn_split(16, 1 << 20), 1);
        assert!(!cpu.stats_in_producer(16, 1 << 20));
        // ~1,024 workgroups over 16 channels, chunks of at least 1,024 values.
        assert_eq!(gpu.bn_split(16, 1 << 20), 64);
        assert_eq!(gpu.bn_split(16, 2048), 2);
        assert_eq!(gpu.bn_split(4096, 1 << 20), 1);
        assert!(gpu.stats_in_producer(16, 1 << 20));
        let forced = LaunchPolicy {
            forced_split: Some(3),
            ..cpu
        };
        assert_eq!(forced.bn_split(16, 1 << 20), 3);
        assert_eq!(forced.bn_split(16, 2), 2);
    }

    #[test]
    fn bindings_decide_the_wide_kernels() {
        let wide = LaunchPolicy::preset(Strategy::Cpu, 32);
        let webgpu = LaunchPolicy::preset(Strategy::Cpu, 8);
        assert_eq!(wide.weighted_sum_terms(64), 8);
        assert_eq!(wide.weighted_sum_terms(63), 4);
        assert_eq!(webgpu.weighted_sum_terms(64), 4);
        assert!(wide.sgd_four_per_launch() && !webgpu.sgd_four_per_launch());
        assert!(wide.fuse_normalized_sum(2048) && !webgpu.fuse_normalized_sum(2048));
        assert!(wide.normalized_sum_serial(8, 2048) && !wide.normalized_sum_serial(8, 2049));
        assert!(wide.normalized_sum_serial(16, 1 << 20));
        // With or without subgroups (the group form's sums take barriers without them).
        assert!(wide.fuse_normalized_sum(1 << 20) && !wide.lanes);
        let capped = LaunchPolicy {
            group_sum_max: 4096,
            ..wide
        };
        assert!(capped.fuse_normalized_sum(4096) && !capped.fuse_normalized_sum(4097));
        assert!(!LaunchPolicy::preset(Strategy::Gpu, 32).fuse_normalized_sum(2));
    }

    #[test]
    fn channels_per_thread_leave_enough_threads_on_gpus() {
        let cpu = LaunchPolicy::preset(Strategy::Cpu, 32);
        let gpu = LaunchPolicy::preset(Strategy::Gpu, 32);
        assert_eq!(cpu.channels_per_thread(16, 64), 16);
        assert_eq!(gpu.channels_per_thread(1 << 16, 64), 16);
        assert_eq!(gpu.channels_per_thread(1 << 13, 64), 8);
        assert_eq!(gpu.channels_per_thread(1 << 12, 64), 4);
        assert_eq!(gpu.channels_per_thread(1 << 12, 2), 4);
    }

    #[test]
    fn shared_rows_need_lanes_and_whole_rows_in_a_subgroup() {
        let lanes = LaunchPolicy {
            lanes: true,
            ..LaunchPolicy::preset(Strategy::Cpu, 32)
        };
        let rows = |per| [4, 8, 12, 16, 24, 32, 64].map(|w| lanes.shares_rows(w, per));
        assert_eq!(rows(4), [true, true, false, true, false, true, false]);
        assert_eq!(rows(8), [false, true, false, true, false, true, true]);
        let none = LaunchPolicy::preset(Strategy::Cpu, 32);
        assert!(!none.lanes && !none.shares_rows(32, 4));
    }

    #[test]
    fn display_names_the_strategy_and_inactive_rows() {
        let text = LaunchPolicy::preset(Strategy::Gpu, 8).to_string();
        assert!(text.starts_with("launch policy: gpu strategy"));
        assert!(text.contains("serial batch norm up to      off (cpu strategy only)"));
        assert!(text.contains("min threads per launch       65536"));
        assert!(text.contains("storage buffers per stage    8"));
    }
}
