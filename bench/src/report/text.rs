//! Text for bitmap charts, drawn with `ab_glyph` directly.
//!
//! plotters 0.3.7's `ab_glyph` text drops each glyph's left side bearing, so
//! letters collide ("cl" reads as "d"). [`GlyphText`] wraps a backend, passes
//! every shape through and draws text itself: the pen advances as plotters
//! measures it (advance plus kerning, so anchors and layout agree), each
//! glyph is placed at its own bounds. SVG needs none of this: its text is
//! text.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};

/// Any backend, with text drawn by [`GlyphText::draw_text`].
#[derive(Debug)]
pub(crate) struct GlyphText<DB>(pub DB);

/// The embedded font, parsed once. `None` if it does not parse (then the
/// wrapped backend draws text as plotters would).
fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(ttf_noto_sans::REGULAR).ok()).as_ref()
}

impl<DB: DrawingBackend> DrawingBackend for GlyphText<DB> {
    type ErrorType = DB::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(&mut self, upper_left: BackendCoord, bottom_right: BackendCoord, style: &S, fill: bool) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, path: I, style: &S) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(&mut self, center: BackendCoord, radius: u32, style: &S, fill: bool) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, vert: I, style: &S) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }

    // Pixel coordinates of a chart a few thousand pixels wide: the float to
    // integer casts cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    fn draw_text<S: BackendTextStyle>(&mut self, text: &str, style: &S, pos: BackendCoord) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let Some(font) = font() else {
            return self.0.draw_text(text, style, pos);
        };
        let colour = style.color();
        if colour.alpha == 0.0 {
            return Ok(());
        }
        // The box plotters laid out (its estimate uses the same advances).
        let ((x0, y0), (x1, y1)) = style.layout_box(text).map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (x1 - x0, y1 - y0);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let size = style.size() as f32;
        let scaled = font.as_scaled(PxScale::from(size));
        // Capital letters centred in the box.
        let cap = scaled.outline_glyph(scaled.scaled_glyph('H')).map_or(size * 0.5, |g| -g.px_bounds().min.y);
        let baseline = (height as f32 + cap) / 2.0;
        let transform = style.transform();
        let (w, h) = self.get_size();
        let mut pixels = Vec::new();
        let mut pen = 0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(size, point(pen, baseline));
            if let Some(outline) = scaled.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    // Glyph pixels count from zero: far below i32::MAX.
                    #[allow(clippy::cast_possible_wrap)]
                    let (gx, gy) = (gx as i32, gy as i32);
                    let local = (b.min.x as i32 + gx + dx, b.min.y as i32 + gy + dy);
                    pixels.push((transform.transform(local.0, local.1), coverage));
                });
            }
            pen += scaled.h_advance(id);
            prev = Some(id);
        }
        for ((x, y), coverage) in pixels {
            let (x, y) = (pos.0 + x, pos.1 + y);
            let inside = x >= 0 && y >= 0 && x.unsigned_abs() < w && y.unsigned_abs() < h;
            if inside && coverage > 0.0 {
                let c = BackendColor { alpha: colour.alpha * f64::from(coverage.min(1.0)), rgb: colour.rgb };
                self.0.draw_pixel((x, y), c)?;
            }
        }
        Ok(())
    }
}
