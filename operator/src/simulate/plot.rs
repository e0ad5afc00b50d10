//! An SVG plot of a simulation: arrival rate, lag and replicas over time for every policy.

use plotters::prelude::*;

use super::Report;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes the plot to `path` (SVG).
pub fn svg(path: &std::path::Path, scenario: &str, reports: &[Report]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (1200, 960)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((3, 1));
    let Some(first) = reports.first() else {
        return Ok(());
    };
    let t_max = first.ticks.last().map_or(1.0, |t| t.t).max(1.0) / 60.0;
    // Downsample to at most ~2000 points per series.
    let every = (first.ticks.len() / 2000).max(1);

    let rate_max = first.ticks.iter().map(|t| t.arrival).fold(1.0, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&panels[0])
        .caption(
            format!("{scenario}: arrival rate (events/s)"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(25)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..rate_max)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("minutes")
        .draw()
        .map_err(|e| err(&e))?;
    c.draw_series(LineSeries::new(
        first
            .ticks
            .iter()
            .step_by(every)
            .map(|t| (t.t / 60.0, t.arrival)),
        BLACK,
    ))
    .map_err(|e| err(&e))?;

    let lag_max = reports
        .iter()
        .flat_map(|r| r.ticks.iter().map(|t| t.lag))
        .fold(1.0, f64::max)
        * 1.1;
    let mut c = ChartBuilder::on(&panels[1])
        .caption("lag (events)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(25)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..lag_max)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("minutes")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, r) in reports.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        c.draw_series(LineSeries::new(
            r.ticks.iter().step_by(every).map(|t| (t.t / 60.0, t.lag)),
            color,
        ))
        .map_err(|e| err(&e))?
        .label(r.policy.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let rep_max = reports
        .iter()
        .flat_map(|r| r.ticks.iter().map(|t| t.replicas))
        .max()
        .unwrap_or(1) as f64
        * 1.1;
    let mut c = ChartBuilder::on(&panels[2])
        .caption("replicas", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(25)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..rep_max)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("minutes")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, r) in reports.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        c.draw_series(LineSeries::new(
            r.ticks
                .iter()
                .step_by(every)
                .map(|t| (t.t / 60.0, t.replicas as f64)),
            color,
        ))
        .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
