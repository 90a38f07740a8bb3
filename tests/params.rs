//! Every registered kernel-parameter struct (`darts_minus::gpu::params_layouts`) against the
//! WGSL struct it mirrors, parsed with naga: same size, same field names at the same byte
//! offsets, of the same WGSL types (u32, f32, vec4<u32>, array<vec4<u32>, 2>), and bound as the file's uniform. A
//! field renamed, reordered, added, retyped or removed on either side fails here instead of silently shifting the kernel's parameters.

use darts_minus::gpu::{params_layouts, shader_sources, KernelParams, ParamsLayout};

fn module(shader: &str) -> naga::Module {
    let sources = shader_sources();
    let (_, src) = sources
        .iter()
        .find(|(name, _)| *name == shader)
        .unwrap_or_else(|| panic!("no shader file '{shader}' in the kernel registry"));
    naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{shader}.wgsl: {}", e.emit_to_string(src)))
}

/// The WGSL spelling of a params member's type; None for any type params do not use.
fn type_name(module: &naga::Module, inner: &naga::TypeInner) -> Option<&'static str> {
    use naga::{ArraySize, Scalar, TypeInner, VectorSize};
    match *inner {
        TypeInner::Scalar(Scalar::U32) => Some("u32"),
        TypeInner::Scalar(Scalar::F32) => Some("f32"),
        TypeInner::Vector {
            size: VectorSize::Quad,
            scalar: Scalar::U32,
        } => Some("vec4<u32>"),
        // Only the two-vec4 tables of mixed.wgsl MS, packed (stride 16) like [[u32; 4]; 2].
        TypeInner::Array {
            base,
            size: ArraySize::Constant(len),
            stride: 16,
        } if len.get() == 2
            && type_name(module, &module.types[base].inner) == Some("vec4<u32>") =>
        {
            Some("array<vec4<u32>, 2>")
        }
        _ => None,
    }
}

/// (size, members as (name, offset, type)) of the struct `name`.
#[allow(clippy::type_complexity)]
fn wgsl_struct(
    module: &naga::Module,
    name: &str,
) -> Option<(u32, Vec<(String, u32, Option<&'static str>)>)> {
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))?;
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{name} is not a struct");
    };
    let members = members
        .iter()
        .map(|m| {
            let name = m.name.clone().unwrap_or_default();
            (name, m.offset, type_name(module, &module.types[m.ty].inner))
        })
        .collect();
    Some((*span, members))
}

fn check(layout: &ParamsLayout) -> Result<(), String> {
    let ParamsLayout {
        rust,
        shader,
        strukt,
        size,
        fields,
        types,
    } = *layout;
    let module = module(shader);
    let Some((span, members)) = wgsl_struct(&module, strukt) else {
        return Err(format!("{rust}: no struct {strukt} in {shader}.wgsl"));
    };
    let wgsl: Vec<(&str, usize)> = members
        .iter()
        .map(|(n, o, _)| (n.as_str(), *o as usize))
        .collect();
    if wgsl != fields {
        return Err(format!(
            "{rust} fields {fields:?} != {shader}.wgsl {strukt} {wgsl:?}"
        ));
    }
    if span as usize != size {
        return Err(format!(
            "{rust} is {size} bytes, {shader}.wgsl {strukt} {span}"
        ));
    }
    if let Some((n, _, _)) = members.iter().find(|m| m.2.is_none()) {
        return Err(format!(
            "{shader}.wgsl {strukt}.{n} is not u32, f32, vec4<u32> or array<vec4<u32>, 2>"
        ));
    }
    let wgsl_types: Vec<&str> = members.iter().filter_map(|m| m.2).collect();
    if wgsl_types != types {
        return Err(format!(
            "{rust} field types {types:?} != {shader}.wgsl {strukt} {wgsl_types:?}"
        ));
    }
    // The struct is what the kernels read as their uniform.
    let bound = module.global_variables.iter().any(|(_, g)| {
        g.space == naga::AddressSpace::Uniform && module.types[g.ty].name.as_deref() == Some(strukt)
    });
    if !bound {
        return Err(format!("{shader}.wgsl binds no uniform of type {strukt}"));
    }
    Ok(())
}

#[test]
fn every_params_struct_matches_its_shader() {
    let layouts = params_layouts();
    assert!(
        layouts.len() >= 3,
        "the conv, pointwise and depthwise params"
    );
    let errors: Vec<String> = layouts.iter().filter_map(|l| check(l).err()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn each_struct_is_registered_once() {
    let layouts = params_layouts();
    for (i, a) in layouts.iter().enumerate() {
        for b in &layouts[i + 1..] {
            assert!(a.rust != b.rust, "{} registered twice", a.rust);
            assert!(
                (a.shader, a.strukt) != (b.shader, b.strukt),
                "{} and {} both mirror {}.wgsl {}",
                a.rust,
                b.rust,
                a.shader,
                a.strukt
            );
        }
    }
}

/// The check itself catches each kind of drift (so a passing run means something).
#[test]
fn a_drifted_layout_is_caught() {
    let conv = params_layouts()
        .into_iter()
        .find(|l| l.strukt == "P" && l.shader == "conv")
        .expect("conv params registered");
    let mut renamed = conv.fields.to_vec();
    renamed[1].0 = "c_in";
    let mut swapped = conv.fields.to_vec();
    let (a, b) = (swapped[0].0, swapped[1].0);
    (swapped[0].0, swapped[1].0) = (b, a);
    let mut added = conv.fields.to_vec();
    added.push(("extra", conv.size));
    let removed = &conv.fields[..conv.fields.len() - 1];
    for fields in [renamed, swapped, added, removed.to_vec()] {
        let fields: &'static [(&'static str, usize)] = Box::leak(fields.into_boxed_slice());
        let drifted = ParamsLayout { fields, ..conv };
        assert!(check(&drifted).is_err(), "{fields:?} passed");
    }
    let resized = ParamsLayout {
        size: conv.size + 16,
        ..conv
    };
    assert!(check(&resized).is_err());
    let elsewhere = ParamsLayout {
        shader: "depthwise",
        ..conv
    };
    assert!(check(&elsewhere).is_err());
}

/// A field declared with the wrong WGSL type (same size and offset) is caught too.
#[test]
fn a_drifted_type_is_caught() {
    for (shader, strukt) in [("reduce", "P"), ("optim", "S4")] {
        let layout = params_layouts()
            .into_iter()
            .find(|l| (l.shader, l.strukt) == (shader, strukt))
            .expect("registered");
        assert!(check(&layout).is_ok());
        let mut types = layout.types.to_vec();
        let last = types.len() - 1;
        types[0] = if types[0] == "u32" { "f32" } else { "u32" };
        types[last] = "u32";
        let types: &'static [&'static str] = Box::leak(types.into_boxed_slice());
        let drifted = ParamsLayout { types, ..layout };
        assert!(check(&drifted).is_err(), "{types:?} passed");
    }
}

/// The words a launch passes are the fields in declaration order.
#[test]
fn words_follow_the_fields() {
    let p = darts_minus::gpu::PointwiseParams {
        n: 1,
        m: 2,
        k: 3,
        hw: 4,
        a_rs: 5,
        a_cs: 6,
        per: 7,
        chunks: 8,
    };
    assert_eq!(p.words(), [1, 2, 3, 4, 5, 6, 7, 8]);
}

/// f32 fields pass their bits and a vec4 its four words in place, as the positional arrays
/// did.
#[test]
fn words_of_f32_and_vec4_fields() {
    let r = darts_minus::gpu::ReduceParams {
        n: 1,
        chunk: 2,
        count: 3,
        offset: 4,
        accumulate: 5,
        factor: 0.5,
    };
    assert_eq!(r.words(), [1, 2, 3, 4, 5, 0.5f32.to_bits()]);
    let q = darts_minus::gpu::SumsqParams {
        n: [1, 2, 3, 4],
        chunk: 5,
        count: 6,
        base: 7,
        _p1: 0,
    };
    assert_eq!(q.words(), [1, 2, 3, 4, 5, 6, 7, 0]);
}

/// A vec4-array field passes its words in place: term t of `tab` at word 8 + t, as the
/// positional array of the normalised sum had it.
#[test]
fn words_of_vec4_array_fields() {
    let mut ms = darts_minus::gpu::MixedSumParams {
        eps: 1e-5,
        ..Default::default()
    };
    ms.tab[1][0] = 7;
    ms.sidx[1][1] = 9;
    let w = ms.words();
    assert_eq!(w.len(), 32);
    assert_eq!((w[6], w[12], w[29]), (1e-5f32.to_bits(), 7, 9));
    let drifted = params_layouts()
        .into_iter()
        .find(|l| (l.shader, l.strukt) == ("mixed", "MS"))
        .expect("registered");
    let mut types = drifted.types.to_vec();
    let last = types.len() - 1;
    types[last] = "vec4<u32>";
    let types: &'static [&'static str] = Box::leak(types.into_boxed_slice());
    assert!(check(&ParamsLayout { types, ..drifted }).is_err());
}
