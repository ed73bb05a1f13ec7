//! Pass 1: the registered anatomy, drawn into the overlay target on the
//! ideal (undistorted) image plane: depth-tested, premultiplied alpha, 4×
//! MSAA by default; opaque models first, then translucent ones far to near.
//! The overlay is drawn again only when something it depends on changes (a
//! scene edit, a new pose, a new size or lens): see [`OverlayKey`].

use std::collections::HashMap;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use glam::{Mat4, Vec3};
use scopecast_shaders::MESH;

use crate::compositor::ModelPose;
use crate::compositor::gpu::GpuContext;
use crate::compositor::pipelines::{buffer_with, layout, mesh_pipeline, module, uniform_buffer, uniform_entry};
use crate::compositor::projection::{OverlayViewport, camera_for_frame, clip_from_camera};
use crate::compositor::targets::OverlayTarget;
use crate::scene::{Mesh, ModelStyle, OutputMode, Scene};

/// One model's uniforms (`mesh.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ModelUniform {
    /// Model → clip space of the overlay target's viewport.
    clip_from_model: [[f32; 4]; 4],
    /// Model → camera frame (mm), for lighting.
    camera_from_model: [[f32; 4]; 4],
    /// Straight RGB and opacity.
    colour: [f32; 4],
    /// `[style, 0, 0, 0]`: 0 solid, 1 wireframe, 2 silhouette.
    style: [f32; 4],
}

/// Everything the overlay's pixels depend on: the target it was drawn into
/// and, in drawing order, each model's mesh and uniforms. The meshes are
/// held, so an address cannot be reused while the key lives.
#[derive(Clone)]
struct OverlayKey {
    target: TargetKey,
    models: Vec<(Arc<Mesh>, ModelUniform)>,
}

/// Which overlay target, and of what shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TargetKey {
    /// `Compositor`'s bindings generation (a replaced texture or table).
    generation: u64,
    distorted: bool,
    /// Output size, px.
    size: (u32, u32),
    /// The target's size, px.
    viewport: (u32, u32),
}

impl PartialEq for OverlayKey {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target
            && self.models.len() == other.models.len()
            && self
                .models
                .iter()
                .zip(&other.models)
                .all(|((ma, ua), (mb, ub))| Arc::ptr_eq(ma, mb) && bytemuck::bytes_of(ua) == bytemuck::bytes_of(ub))
    }
}

/// A mesh's vertex and index buffers.
struct GpuMesh {
    /// Keeps the pointer used as cache key alive.
    _mesh: Arc<Mesh>,
    /// Interleaved position and normal, 6 × f32.
    vertices: wgpu::Buffer,
    triangles: wgpu::Buffer,
    triangle_count: u32,
    /// Each edge once, as line-list indices (wireframe).
    edges: wgpu::Buffer,
    edge_count: u32,
}

/// One drawn model's uniform buffer and bind group (by drawing order).
struct ModelSlot {
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// A model as this frame draws it: the scene's, with its tracked pose.
struct Drawn {
    mesh: Arc<Mesh>,
    camera_from_model: Mat4,
    colour: [f32; 3],
    opacity: f32,
    style: ModelStyle,
}

/// Grey of a model drawn as not tracked (straight RGB).
const NOT_TRACKED_COLOUR: [f32; 3] = [0.6, 0.6, 0.6];
/// Its opacity.
const NOT_TRACKED_OPACITY: f32 = 0.5;

/// Model `index` as drawn this frame with `poses` (none: as the scene says).
fn drawn(scene: &Scene, poses: &[ModelPose], index: usize) -> Option<Drawn> {
    let model = &scene.models[index];
    if !model.visible || model.opacity <= 0.0 {
        return None;
    }
    let as_scene = Drawn {
        mesh: model.mesh.clone(),
        camera_from_model: model.camera_from_model,
        colour: model.colour,
        opacity: model.opacity,
        style: model.style,
    };
    match poses.get(index).copied().unwrap_or(ModelPose::AsScene) {
        ModelPose::AsScene => Some(as_scene),
        ModelPose::Tracked(camera_from_model) => Some(Drawn { camera_from_model, ..as_scene }),
        ModelPose::Hidden => None,
        ModelPose::NotTracked(camera_from_model) => Some(Drawn {
            camera_from_model,
            colour: NOT_TRACKED_COLOUR,
            opacity: NOT_TRACKED_OPACITY,
            style: ModelStyle::Wireframe,
            ..as_scene
        }),
    }
}

/// One frame's inputs to the overlay pass.
pub(crate) struct OverlayInputs<'a> {
    /// The scene.
    pub(crate) scene: &'a Scene,
    /// Tracked models' poses this frame, by model index (empty: as the scene says).
    pub(crate) poses: &'a [ModelPose],
    /// The target for the scene's output mode, ready to draw into.
    pub(crate) target: &'a OverlayTarget,
    /// Output size, px.
    pub(crate) size: (u32, u32),
    /// `Compositor`'s bindings generation.
    pub(crate) generation: u64,
}

/// The overlay pass.
pub(crate) struct OverlayPass {
    solid: wgpu::RenderPipeline,
    wireframe: wgpu::RenderPipeline,
    bind_layout: wgpu::BindGroupLayout,
    /// GPU copies of the scene's meshes, by the mesh's address.
    meshes: HashMap<usize, GpuMesh>,
    slots: Vec<ModelSlot>,
    /// What the overlay target holds now.
    drawn_for: Option<OverlayKey>,
    /// Times the overlay was drawn (the CPU plan's layer follows it).
    draws: u64,
}

fn mesh_key(mesh: &Arc<Mesh>) -> usize {
    Arc::as_ptr(mesh) as usize
}

impl OverlayPass {
    /// The pass's pipelines on `device`, with `msaa_samples` (1 or 4) per pixel.
    pub(crate) fn new(device: &wgpu::Device, msaa_samples: u32) -> Self {
        let bind_layout = layout(device, "mesh", &[uniform_entry(0, wgpu::ShaderStages::VERTEX_FRAGMENT)]);
        let shader = module(device, MESH);
        let solid = mesh_pipeline(device, msaa_samples, &shader, &bind_layout, wgpu::PrimitiveTopology::TriangleList);
        let wireframe = mesh_pipeline(device, msaa_samples, &shader, &bind_layout, wgpu::PrimitiveTopology::LineList);
        Self { solid, wireframe, bind_layout, meshes: HashMap::new(), slots: Vec::new(), drawn_for: None, draws: 0 }
    }

    /// Times the overlay was drawn into a target (not counting frames that
    /// found it already there).
    pub(crate) fn draws(&self) -> u64 {
        self.draws
    }

    /// Drops GPU meshes no model of the scene uses any more.
    pub(crate) fn drop_unused_meshes(&mut self, scene: &Scene) {
        if self.meshes.len() > scene.models.len() {
            let live: Vec<usize> = scene.models.iter().map(|m| mesh_key(&m.mesh)).collect();
            self.meshes.retain(|k, _| live.contains(k));
        }
    }

    fn upload_mesh(&mut self, device: &wgpu::Device, mesh: &Arc<Mesh>) {
        self.meshes.entry(mesh_key(mesh)).or_insert_with(|| {
            let interleaved: Vec<[f32; 6]> =
                mesh.positions.iter().zip(&mesh.normals).map(|(p, n)| [p[0], p[1], p[2], n[0], n[1], n[2]]).collect();
            let edges = mesh.edge_indices();
            GpuMesh {
                _mesh: mesh.clone(),
                vertices: buffer_with(
                    device,
                    "mesh-vertices",
                    bytemuck::cast_slice(&interleaved),
                    wgpu::BufferUsages::VERTEX,
                ),
                triangles: buffer_with(
                    device,
                    "mesh-triangles",
                    bytemuck::cast_slice(&mesh.indices),
                    wgpu::BufferUsages::INDEX,
                ),
                triangle_count: mesh.indices.len() as u32,
                edges: buffer_with(device, "mesh-edges", bytemuck::cast_slice(&edges), wgpu::BufferUsages::INDEX),
                edge_count: edges.len() as u32,
            }
        });
    }

    fn slot(&mut self, device: &wgpu::Device, index: usize) -> &ModelSlot {
        while self.slots.len() <= index {
            let uniform = uniform_buffer(device, "model", std::mem::size_of::<ModelUniform>() as u64);
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("model"),
                layout: &self.bind_layout,
                entries: &[wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }],
            });
            self.slots.push(ModelSlot { uniform, bind_group });
        }
        &self.slots[index]
    }

    /// Draws the scene's visible models, at their tracked poses, into the
    /// inputs' target (the caller's choice for the scene's output mode,
    /// ready to draw into); returns whether there is an overlay to compose.
    /// Nothing is drawn when the target already holds this very overlay.
    pub(crate) fn encode(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        inputs: OverlayInputs<'_>,
    ) -> bool {
        let OverlayInputs { scene, poses, target, size, generation } = inputs;
        let Some(calibration) = &scene.calibration else { return false };
        if !scene.layers.anatomy {
            return false;
        }
        let camera = camera_for_frame(&calibration.camera, (calibration.width, calibration.height), size);
        let viewport: OverlayViewport = target.viewport;
        let clip_from_camera = clip_from_camera(&camera.intrinsics, &viewport);
        let drawn: Vec<Drawn> = (0..scene.models.len()).filter_map(|i| drawn(scene, poses, i)).collect();
        if drawn.is_empty() {
            return false;
        }
        // Opaque models first, then translucent ones from far to near.
        let mut order: Vec<usize> = (0..drawn.len()).collect();
        let depth = |i: usize| drawn[i].camera_from_model.transform_point3(Vec3::ZERO).z;
        order.sort_by(|&a, &b| {
            let (oa, ob) = (drawn[a].opacity >= 1.0, drawn[b].opacity >= 1.0);
            ob.cmp(&oa).then(depth(b).total_cmp(&depth(a)))
        });
        let models: Vec<(Arc<Mesh>, ModelUniform)> = order
            .iter()
            .map(|&index| {
                let model = &drawn[index];
                let uniform = ModelUniform {
                    clip_from_model: (clip_from_camera * model.camera_from_model).to_cols_array_2d(),
                    camera_from_model: model.camera_from_model.to_cols_array_2d(),
                    colour: [model.colour[0], model.colour[1], model.colour[2], model.opacity],
                    style: [
                        match model.style {
                            ModelStyle::Solid => 0.0,
                            ModelStyle::Wireframe => 1.0,
                            ModelStyle::Silhouette => 2.0,
                        },
                        0.0,
                        0.0,
                        0.0,
                    ],
                };
                (model.mesh.clone(), uniform)
            })
            .collect();
        let distorted = scene.output_mode == OutputMode::Distorted;
        let key = OverlayKey { target: TargetKey { generation, distorted, size, viewport: viewport.size }, models };
        if self.drawn_for.as_ref() == Some(&key) {
            return true;
        }
        for (index, (mesh, uniform)) in key.models.iter().enumerate() {
            let buffer = self.slot(&ctx.device, index).uniform.clone();
            ctx.queue.write_buffer(&buffer, 0, bytemuck::bytes_of(uniform));
            self.upload_mesh(&ctx.device, mesh);
        }
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("overlay"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target.msaa_view.as_ref().unwrap_or(&target.resolved_view),
                depth_slice: None,
                resolve_target: target.msaa_view.as_ref().map(|_| &target.resolved_view),
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                    store: if target.msaa_view.is_some() { wgpu::StoreOp::Discard } else { wgpu::StoreOp::Store },
                },
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: &target.depth_view,
                depth_ops: Some(wgpu::Operations { load: wgpu::LoadOp::Clear(1.0), store: wgpu::StoreOp::Discard }),
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        for (slot, &index) in order.iter().enumerate() {
            let model = &drawn[index];
            let Some(mesh) = self.meshes.get(&mesh_key(&model.mesh)) else { continue };
            let wireframe = model.style == ModelStyle::Wireframe;
            pass.set_pipeline(if wireframe { &self.wireframe } else { &self.solid });
            pass.set_bind_group(0, &self.slots[slot].bind_group, &[]);
            pass.set_vertex_buffer(0, mesh.vertices.slice(..));
            if wireframe {
                pass.set_index_buffer(mesh.edges.slice(..), wgpu::IndexFormat::Uint32);
                pass.draw_indexed(0..mesh.edge_count, 0, 0..1);
            } else {
                pass.set_index_buffer(mesh.triangles.slice(..), wgpu::IndexFormat::Uint32);
                pass.draw_indexed(0..mesh.triangle_count, 0, 0..1);
            }
        }
        drop(pass);
        self.drawn_for = Some(key);
        self.draws += 1;
        true
    }
}
