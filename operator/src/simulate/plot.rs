//! An SVG plot of a simulation: arrival rate, lag and replicas over time for every policy.

use plotters::{coord::Shift, prelude::*};

use super::{Report, model::Tick};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Draws one panel: a value of the ticks over minutes, one line per series.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    series: &[(&str, &[Tick], RGBColor)],
    value: fn(&Tick) -> f64,
    legend: bool,
) -> Result<(), String> {
    let Some(first) = series.first() else {
        return Ok(());
    };
    let t_max = first.1.last().map_or(1.0, |t| t.t).max(1.0) / 60.0;
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(value))
        .fold(1.0, f64::max)
        * 1.1;
    // Downsample to at most ~2000 points per line.
    let every = (first.1.len() / 2000).max(1);
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(25)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(err)?;
    c.configure_mesh().x_desc("minutes").draw().map_err(err)?;
    for (name, ticks, color) in series {
        let color = *color;
        c.draw_series(LineSeries::new(
            ticks.iter().step_by(every).map(|t| (t.t / 60.0, value(t))),
            color,
        ))
        .map_err(err)?
        .label(*name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    if legend {
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Writes the plot to `path` (SVG).
pub fn svg(path: &std::path::Path, scenario: &str, reports: &[Report]) -> Result<(), String> {
    let Some(first) = reports.first() else {
        return Ok(());
    };
    let root = SVGBackend::new(path, (1200, 960)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((3, 1));
    let policies: Vec<(&str, &[Tick], RGBColor)> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.policy.as_str(),
                r.ticks.as_slice(),
                COLORS[i % COLORS.len()],
            )
        })
        .collect();
    panel(
        &panels[0],
        &format!("{scenario}: arrival rate (events/s)"),
        &[("arrival", &first.ticks, BLACK)],
        |t| t.arrival,
        false,
    )?;
    panel(&panels[1], "lag (events)", &policies, |t| t.lag, true)?;
    panel(
        &panels[2],
        "replicas",
        &policies,
        |t| f64::from(t.replicas),
        false,
    )?;
    root.present().map_err(err)
}
