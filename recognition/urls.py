"""HTTP routes of the recognition app: the kiosk (device cookie), the public privacy page and attendance (staff)."""

from django.urls import path

from . import views

urlpatterns = [
    path("kiosk/", views.kiosk_page, name="kiosk"),
    path("kiosk/status", views.kiosk_status, name="kiosk-status"),
    path("kiosk/pair/<str:code>/", views.kiosk_pair, name="kiosk-pair"),
    # public: what the kiosks do with faces (the kiosk screen's notice line points here)
    path("privacy/", views.privacy_notice, name="privacy"),
    path("attendance/", views.attendance_day, name="attendance-day"),
    path("attendance/people/<int:pk>/", views.attendance_person, name="attendance-person"),
    path("attendance/summary/", views.attendance_summary_page, name="attendance-summary"),
    path("attendance/export.csv", views.attendance_export, name="attendance-export"),
]
