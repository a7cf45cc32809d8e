//! Probe sites: the static table the host reads at load, and how bindings are
//! captured when a site is armed.
//!
//! Each `probe!` expands to a `static ProbeSite` placed in the [`PROBE_SITES`]
//! distributed slice (a linker section), so the whole table exists before any
//! plugin code runs. Capturing a binding picks, at compile time, the best
//! representation the type allows, through method resolution on `&&&Cap(..)`
//! ("autoref specialisation"): numbers, booleans and strings as themselves
//! ([`CaptureFast`]), then `Serialize` as JSON ([`CaptureSerde`]), then `Debug`
//! text ([`CaptureDebug`]), then the type name ([`CaptureAny`]). A `&mut`
//! binding ([`CapMut`]) whose type is also `Deserialize` carries a setter the
//! host may call while the hit is in progress.

use std::ffi::c_void;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ax_abi::{AxBytes, AxStr, ProbeSite, ProbeValue, StaticStr, Status, value_kind};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every probe site in the plugin image.
#[linkme::distributed_slice]
pub static PROBE_SITES: [ProbeSite];

/// The path of the function enclosing a probe, from the type name of a marker
/// function nested in it (`crate::module::func::__AX_PROBE::__ax_probe_fn::__ax_marker`).
pub fn function_name<F>(_marker: F) -> StaticStr {
    let full: &'static str = std::any::type_name::<F>();
    let trimmed = full.split("::__AX_PROBE").next().unwrap_or(full);
    let trimmed = trimmed.strip_suffix("::{{closure}}").unwrap_or(trimmed);
    StaticStr::new(trimmed)
}

/// A captured binding: the value the host sees, and the text it points into.
#[derive(Debug)]
pub struct Captured {
    value: ProbeValue,
    _text: Option<String>,
}

impl Captured {
    fn num(kind: u8, num: u64) -> Captured {
        Captured {
            value: ProbeValue { kind, num, text: AxStr::EMPTY, target: std::ptr::null_mut(), set: None },
            _text: None,
        }
    }

    fn text(kind: u8, text: String) -> Captured {
        let value = ProbeValue { kind, num: 0, text: AxStr::from_str(&text), target: std::ptr::null_mut(), set: None };
        Captured { value, _text: Some(text) }
    }

    fn borrowed(text: &str) -> Captured {
        // The binding outlives the hit, so its bytes can be lent as they are.
        let value = ProbeValue {
            kind: value_kind::STR,
            num: 0,
            text: AxStr::from_str(text),
            target: std::ptr::null_mut(),
            set: None,
        };
        Captured { value, _text: None }
    }

    fn writable<T: DeserializeOwned>(mut self, target: *mut T) -> Captured {
        self.value.target = target.cast::<c_void>();
        self.value.set = Some(set_json::<T>);
        self
    }
}

/// A read-only binding.
#[derive(Debug)]
pub struct Cap<'a, T: ?Sized>(pub &'a T);

/// A `&mut` binding, kept as a raw pointer so that the setter writes with the
/// provenance of the original `&mut`.
#[derive(Debug)]
pub struct CapMut<T>(pub *mut T);

impl<T> CapMut<T> {
    fn get(&self) -> &T {
        // SAFETY: made from `&mut var` at the probe; nothing else touches var during the hit.
        unsafe { &*self.0 }
    }
}

/// Numbers, booleans and strings: captured without serialisation.
pub trait CaptureFast {
    fn ax_capture(&self) -> Captured;
}

/// `Serialize` types: captured as JSON.
pub trait CaptureSerde {
    fn ax_capture(&self) -> Captured;
}

/// `Debug` types: captured as their `Debug` text.
pub trait CaptureDebug {
    fn ax_capture(&self) -> Captured;
}

/// Anything else: captured as its type name.
pub trait CaptureAny {
    fn ax_capture(&self) -> Captured;
}

trait Fast {
    fn capture(&self) -> Captured;
}

macro_rules! fast_int {
    ($kind:expr, $as:ty; $($t:ty),*) => {$(
        impl Fast for $t {
            fn capture(&self) -> Captured {
                Captured::num($kind, *self as $as as u64)
            }
        }
    )*};
}
fast_int!(value_kind::I64, i64; i8, i16, i32, i64, isize);
fast_int!(value_kind::U64, u64; u8, u16, u32, u64, usize);

impl Fast for f64 {
    fn capture(&self) -> Captured {
        Captured::num(value_kind::F64, self.to_bits())
    }
}
impl Fast for f32 {
    fn capture(&self) -> Captured {
        Captured::num(value_kind::F64, f64::from(*self).to_bits())
    }
}
impl Fast for bool {
    fn capture(&self) -> Captured {
        Captured::num(value_kind::BOOL, u64::from(*self))
    }
}
impl Fast for str {
    fn capture(&self) -> Captured {
        Captured::borrowed(self)
    }
}
impl Fast for &str {
    fn capture(&self) -> Captured {
        Captured::borrowed(self)
    }
}
impl Fast for String {
    fn capture(&self) -> Captured {
        Captured::borrowed(self)
    }
}

// The macro calls `(&&&&Cap(..)).ax_capture()`. Receiver `&&&&Cap`: the first
// candidate method resolution tries.
impl<T: Fast + ?Sized> CaptureFast for &&&Cap<'_, T> {
    fn ax_capture(&self) -> Captured {
        self.0.capture()
    }
}
impl<T: Fast + Serialize + DeserializeOwned> CaptureFast for &&&CapMut<T> {
    fn ax_capture(&self) -> Captured {
        self.get().capture().writable(self.0)
    }
}

// Receiver `&&&Cap`: tried after one dereference.
impl<T: Serialize + ?Sized> CaptureSerde for &&Cap<'_, T> {
    fn ax_capture(&self) -> Captured {
        serde_capture(self.0)
    }
}
impl<T: Serialize + DeserializeOwned> CaptureSerde for &&CapMut<T> {
    fn ax_capture(&self) -> Captured {
        serde_capture(self.get()).writable(self.0)
    }
}

fn serde_capture<T: Serialize + ?Sized>(value: &T) -> Captured {
    match serde_json::to_string(value) {
        Ok(json) => Captured::text(value_kind::JSON, json),
        Err(e) => Captured::text(value_kind::DEBUG, format!("<cannot serialise: {e}>")),
    }
}

// Receiver `&&Cap`: tried after two.
impl<T: Debug + ?Sized> CaptureDebug for &Cap<'_, T> {
    fn ax_capture(&self) -> Captured {
        Captured::text(value_kind::DEBUG, format!("{:?}", self.0))
    }
}
impl<T: Debug> CaptureDebug for &CapMut<T> {
    fn ax_capture(&self) -> Captured {
        Captured::text(value_kind::DEBUG, format!("{:?}", self.get()))
    }
}

// Receiver `&Cap`, after three: the last resort, for every type.
impl<T: ?Sized> CaptureAny for Cap<'_, T> {
    fn ax_capture(&self) -> Captured {
        Captured::text(value_kind::DEBUG, format!("<{}>", std::any::type_name::<T>()))
    }
}
impl<T> CaptureAny for CapMut<T> {
    fn ax_capture(&self) -> Captured {
        Captured::text(value_kind::DEBUG, format!("<{}>", std::any::type_name::<T>()))
    }
}

/// Overwrites a `&mut` binding with `json` decoded as `T`.
unsafe extern "C" fn set_json<T: DeserializeOwned>(target: *mut c_void, json: AxStr, err: *mut AxBytes) -> Status {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host passes JSON it owns for the duration of the call.
        let bytes = unsafe { json.as_bytes() };
        let value: T = serde_json::from_slice(bytes)
            .map_err(|e| format!("expected a value of type {}: {e}", std::any::type_name::<T>()))?;
        // SAFETY: target is the `&mut` binding of a hit in progress on this thread.
        unsafe { *target.cast::<T>() = value };
        Ok::<(), String>(())
    }));
    let message = match result {
        Ok(Ok(())) => return Status::OK,
        Ok(Err(message)) => message,
        Err(_) => "panic while writing the value".to_owned(),
    };
    if !err.is_null() {
        // SAFETY: valid slot from the host.
        unsafe { err.write(AxBytes::from_vec(message.into_bytes())) };
    }
    Status::ERROR
}

/// Reports a hit of an armed site to the host.
#[cold]
#[inline(never)]
pub fn probe_hit(site: &'static ProbeSite, values: &mut [Captured]) {
    let Some(host) = crate::bridge::host() else {
        return;
    };
    let values: Vec<ProbeValue> = values
        .iter()
        .map(|c| ProbeValue {
            kind: c.value.kind,
            num: c.value.num,
            text: c.value.text,
            target: c.value.target,
            set: c.value.set,
        })
        .collect();
    // SAFETY: the values and their text stay alive until the host returns.
    unsafe { (host.probe_hit)(host.ctx, site, values.as_ptr(), values.len()) };
    drop(values);
    crate::bridge::check_abort(host);
}
