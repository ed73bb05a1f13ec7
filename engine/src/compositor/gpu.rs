//! The wgpu device the compositor runs on: any Vulkan, GL, Metal or DX12
//! adapter; on machines without a GPU, Mesa's lavapipe (llvmpipe, Vulkan).

use thiserror::Error;

/// Why no GPU device could be had.
#[derive(Debug, Error)]
pub enum GpuError {
    /// No adapter at all.
    #[error(
        "no GPU adapter found ({reason}); on Debian/Ubuntu without a GPU install mesa-vulkan-drivers and libvulkan1 (lavapipe)"
    )]
    NoAdapter {
        /// wgpu's reason.
        reason: String,
    },
    /// The adapter refused a device.
    #[error("the adapter {adapter} refused a device: {reason}")]
    NoDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's reason.
        reason: String,
    },
}

/// Which adapter to prefer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterPreference {
    /// The fastest GPU (the station).
    HighPerformance,
    /// A CPU adapter (lavapipe) when there is one: deterministic test images.
    Software,
}

/// An adapter, its device and queue.
#[derive(Debug, Clone)]
pub struct GpuContext {
    /// The instance (window surfaces are made from it).
    pub instance: wgpu::Instance,
    /// The adapter (what a window surface supports is asked of it).
    pub adapter: wgpu::Adapter,
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter is (name, backend, type).
    pub adapter_info: wgpu::AdapterInfo,
}

/// The backends the station looks at. GL (EGL) only where no other backend
/// has an adapter: probing EGL on a machine without a display prints
/// libwayland's `XDG_RUNTIME_DIR is invalid or not set` errors on stderr.
const PRIMARY_BACKENDS: wgpu::Backends =
    wgpu::Backends::VULKAN.union(wgpu::Backends::METAL).union(wgpu::Backends::DX12);

fn instance_for(backends: wgpu::Backends) -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    })
}

/// The preferred adapter and the instance it came from.
fn pick_adapter(preference: AdapterPreference) -> Result<(wgpu::Instance, wgpu::Adapter), GpuError> {
    let rank = |info: &wgpu::AdapterInfo| -> u32 {
        let kind = match (preference, info.device_type) {
            (AdapterPreference::Software, wgpu::DeviceType::Cpu) => 0,
            (AdapterPreference::HighPerformance, wgpu::DeviceType::DiscreteGpu) => 0,
            (AdapterPreference::HighPerformance, wgpu::DeviceType::IntegratedGpu) => 1,
            (_, wgpu::DeviceType::Cpu) => 3,
            _ => 2,
        };
        // Prefer Vulkan over GL for the same kind of device.
        kind * 2 + u32::from(info.backend != wgpu::Backend::Vulkan)
    };
    for backends in [PRIMARY_BACKENDS, wgpu::Backends::GL] {
        let instance = instance_for(backends);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if let Some(adapter) = adapters.into_iter().min_by_key(|a| rank(&a.get_info())) {
            return Ok((instance, adapter));
        }
    }
    Err(GpuError::NoAdapter { reason: "no adapter enumerated".into() })
}

/// What the station's adapter is, without opening a device (`scopecast
/// doctor` and the demo's settings for software renderers ask this).
pub fn probe_adapter(preference: AdapterPreference) -> Result<wgpu::AdapterInfo, GpuError> {
    pick_adapter(preference).map(|(_, adapter)| adapter.get_info())
}

/// A renderer on the CPU (Mesa's lavapipe/llvmpipe, SwiftShader, WARP).
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// Mesa's (major, minor) from a driver string such as `Mesa 22.3.6 (LLVM 15.0.6)`.
pub fn mesa_version(driver_info: &str) -> Option<(u32, u32)> {
    let rest = &driver_info[driver_info.find("Mesa ")? + 5..];
    let mut numbers = rest.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// A warning in words when `info` is a software renderer known to leak:
/// Mesa before 23 (Debian 12 ships 22.3.6, whose lavapipe leaks about 420 kB
/// per compose draw, measured by `benches/compositor_memory.rs`; Mesa 25.0.7
/// from bookworm-backports was measured flat).
pub fn leaky_software_renderer(info: &wgpu::AdapterInfo) -> Option<String> {
    let (major, minor) = mesa_version(&info.driver_info)?;
    (is_software(info) && major < 23).then(|| {
        format!(
            "the GPU is Mesa {major}.{minor}'s software renderer ({}), which leaks about 420 kB per frame \
             (about 25 MB a second at 60 fps); install Mesa 23 or newer (Debian 12: apt-get install \
             -t bookworm-backports mesa-vulkan-drivers, as .ci/deps.sh does) or use a GPU",
            info.name
        )
    })
}

impl GpuContext {
    /// Opens a device on the preferred kind of adapter.
    pub fn new(preference: AdapterPreference) -> Result<Self, GpuError> {
        let (instance, adapter) = pick_adapter(preference)?;
        let adapter_info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("scopecast"),
            required_features: wgpu::Features::empty(),
            required_limits: wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits()),
            ..Default::default()
        }))
        .map_err(|e| GpuError::NoDevice { adapter: adapter_info.name.clone(), reason: e.to_string() })?;
        Ok(Self { instance, adapter, device, queue, adapter_info })
    }

    /// `name (backend, type)` for logs and bench output.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.adapter_info.name, self.adapter_info.backend, self.adapter_info.device_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(device_type: wgpu::DeviceType, driver_info: &str) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            vendor: 0x10005,
            device: 0,
            device_type,
            driver: "llvmpipe".into(),
            driver_info: driver_info.into(),
            backend: wgpu::Backend::Vulkan,
            ..probe_adapter(AdapterPreference::Software).expect("lavapipe (mesa-vulkan-drivers) is installed")
        }
    }

    #[test]
    fn mesa_versions_are_read_from_the_driver_string() {
        assert_eq!(mesa_version("Mesa 22.3.6 (LLVM 15.0.6)"), Some((22, 3)));
        assert_eq!(mesa_version("Mesa 25.0.7-2~bpo12+1 (LLVM 19.1.7)"), Some((25, 0)));
        assert_eq!(mesa_version("535.104.05"), None);
        assert_eq!(mesa_version("Mesa "), None);
    }

    #[test]
    fn only_old_mesa_software_renderers_are_called_leaky() {
        let warning = leaky_software_renderer(&adapter(wgpu::DeviceType::Cpu, "Mesa 22.3.6 (LLVM 15.0.6)"));
        assert!(warning.is_some_and(|w| w.contains("Mesa 22.3") && w.contains("bookworm-backports")));
        assert_eq!(leaky_software_renderer(&adapter(wgpu::DeviceType::Cpu, "Mesa 25.0.7 (LLVM 19.1.7)")), None);
        assert_eq!(leaky_software_renderer(&adapter(wgpu::DeviceType::DiscreteGpu, "Mesa 22.3.6")), None);
    }
}
