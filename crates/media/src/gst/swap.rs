//! Switching a device mid-call: replacing a live source or a sink inside a
//! playing pipeline without stopping it.

use gst::prelude::*;

use crate::MediaError;

fn err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Device(e.to_string())
}

/// Replaces the source `old` (linked to `next`) with `new`. A source has
/// nothing upstream, so unlinking it stops its data at once; the new one
/// takes the pipeline's clock and base time when it syncs its state.
pub fn source(
    bin: &gst::Bin,
    old: &gst::Element,
    new: &gst::Element,
    next: &gst::Element,
) -> Result<(), MediaError> {
    old.unlink(next);
    let _ = old.set_state(gst::State::Null);
    bin.remove(old).map_err(err)?;
    bin.add(new).map_err(err)?;
    new.link(next).map_err(err)?;
    new.sync_state_with_parent().map_err(err)?;
    Ok(())
}

/// Replaces the sink `old` (fed by `prev`) with `new`, when `prev`'s source
/// pad is idle so no buffer is half-way through.
pub fn sink(
    bin: &gst::Bin,
    prev: &gst::Element,
    old: &gst::Element,
    new: &gst::Element,
) -> Result<(), MediaError> {
    let pad = prev.static_pad("src").ok_or_else(|| err("no src pad"))?;
    let (bin, prev, old, new) = (bin.clone(), prev.clone(), old.clone(), new.clone());
    pad.add_probe(gst::PadProbeType::IDLE, move |_, _| {
        prev.unlink(&old);
        let _ = old.set_state(gst::State::Null);
        let _ = bin.remove(&old);
        if bin.add(&new).is_ok() && prev.link(&new).is_ok() {
            let _ = new.sync_state_with_parent();
        } else {
            tracing::warn!("could not switch the audio output");
        }
        gst::PadProbeReturn::Remove
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    fn counting_sink(n: &Arc<AtomicU64>) -> gst::Element {
        let n = n.clone();
        let s = gst_app::AppSink::builder().sync(false).build();
        s.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let _ = s.pull_sample();
                    n.fetch_add(1, Ordering::Relaxed);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        s.upcast()
    }

    fn tone(hz: f64) -> gst::Element {
        let e = gst::ElementFactory::make("audiotestsrc").build().unwrap();
        e.set_property("is-live", true);
        e.set_property("freq", hz);
        e
    }

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_live_source_and_a_sink_are_switched_in_a_playing_pipeline() {
        crate::gst::init().unwrap();
        let p = gst::Pipeline::new();
        let bin: &gst::Bin = p.upcast_ref();
        let (src, conv) = (tone(440.0), gst::ElementFactory::make("audioconvert").build().unwrap());
        let (first, second) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let sink1 = counting_sink(&first);
        bin.add_many([&src, &conv, &sink1]).unwrap();
        gst::Element::link_many([&src, &conv, &sink1]).unwrap();
        p.set_state(gst::State::Playing).unwrap();
        wait_for("data reaches the first sink", || first.load(Ordering::Relaxed) > 5);

        let src2 = tone(660.0);
        source(bin, &src, &src2, &conv).unwrap();
        assert!(src.parent().is_none(), "the old source left the pipeline");
        let sink2 = counting_sink(&second);
        sink(bin, &conv, &sink1, &sink2).unwrap();
        wait_for("data from the new source reaches the new sink", || second.load(Ordering::Relaxed) > 5);
        let before = first.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(first.load(Ordering::Relaxed), before, "the old sink gets nothing more");
        assert!(sink1.parent().is_none());
        p.set_state(gst::State::Null).unwrap();
    }
}
