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

impl GpuContext {
    /// Opens a device on the preferred kind of adapter.
    pub fn new(preference: AdapterPreference) -> Result<Self, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12 | wgpu::Backends::GL,
            ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
        });
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
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
        let adapter = adapters
            .into_iter()
            .min_by_key(|a| rank(&a.get_info()))
            .ok_or_else(|| GpuError::NoAdapter { reason: "no adapter enumerated".into() })?;
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
